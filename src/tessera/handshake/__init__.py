"""Handshake state machines, by role and version, and the shared ClientHello processing."""
