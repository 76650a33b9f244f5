"""Cryptographic building blocks. Primitives come from ``cryptography``; this is the glue."""
