"""The record layer: framing, protection, and handshake message reassembly."""
