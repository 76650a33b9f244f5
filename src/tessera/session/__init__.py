"""Resumption: the session model, stores, ticket sealing, the ticket keyring and statistics."""
