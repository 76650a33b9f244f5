"""The running handshake transcript hash.

Until the cipher suite (and so the hash) is known, messages are buffered. Full message bytes are
kept only when something will need them (a TLS 1.2 CertificateVerify signs the messages
themselves, not their hash).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..enums import HandshakeType
from .mac import new_hash

if TYPE_CHECKING:
    from hashlib import _Hash


class Transcript:
    __slots__ = ("_hash", "_keep", "_messages", "hash_name")

    def __init__(self, keep_messages: bool = False) -> None:
        self._hash: _Hash | None = None
        self.hash_name = ""
        self._messages: list[bytes] = []
        self._keep = keep_messages

    def keep_messages(self) -> None:
        """Keep every message from now on (only possible before the hash is chosen)."""
        self._keep = True

    def set_hash(self, hash_name: str) -> None:
        self.hash_name = hash_name
        h = new_hash(hash_name)
        for m in self._messages:
            h.update(m)
        self._hash = h
        if not self._keep:
            self._messages = []

    @property
    def hash_ready(self) -> bool:
        return self._hash is not None

    def add(self, message: bytes) -> None:
        if self._hash is not None:
            self._hash.update(message)
            if self._keep:
                self._messages.append(message)
        else:
            self._messages.append(message)

    def fork(self) -> Transcript:
        """A copy that grows apart from this one (hash only): TLS 1.3 post-handshake
        authentication continues the handshake transcript once per request."""
        other = Transcript()
        other.hash_name = self.hash_name
        other._hash = self._chosen().copy()
        return other

    def _chosen(self) -> _Hash:
        h = self._hash
        assert h is not None, "the transcript hash is set once the cipher suite is known"
        return h

    def digest(self) -> bytes:
        h = self._hash
        assert h is not None, "the transcript hash is set once the cipher suite is known"
        return h.copy().digest()

    def messages(self) -> bytes:
        """All messages so far (requires ``keep_messages``)."""
        return b"".join(self._messages)

    def replace_with_message_hash(self) -> None:
        """RFC 8446 §4.4.1: after a HelloRetryRequest, ClientHello1 is replaced by its hash."""
        digest = self.digest()
        h = new_hash(self.hash_name)
        synthetic = bytes((HandshakeType.MESSAGE_HASH, 0, 0, len(digest))) + digest
        h.update(synthetic)
        self._hash = h
        if self._keep:
            self._messages = [synthetic]
