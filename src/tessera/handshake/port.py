"""The handshake I/O port: everything a handshake state may do to the connection's records.

States never touch the record layer. They send encoded handshake messages (``send``), end a
flight (``flush``), send a ChangeCipherSpec or a warning alert, and switch keys with
``install_keys(direction, epoch, suite, secret)`` — a TLS 1.3 traffic secret, or the TLS 1.2
key material of one direction (:class:`Keys12`); the port builds each record protection (and its
AEAD context) once per epoch. What 0-RTT rejection needs is ``skip_early_data``; 0-RTT data
itself leaves through ``send_early_data``. :class:`RecordPort` implements the port over
:class:`~tessera.record.layer.RecordLayer` (a QUIC front end would implement it over its crypto
streams instead).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Protocol

from ..crypto.key_schedule import traffic_keys
from ..crypto.suites import CipherSuite
from ..enums import AlertDescription, AlertLevel, ContentType, ProtocolVersion
from ..errors import UnexpectedMessage
from ..frozen import quick_init
from ..record.layer import HandshakeReassembler, RecordLayer
from ..record.protection import AEAD12, AEAD13, CBC12, NullProtection, RecordProtection


class Direction(Enum):
    READ = "read"
    WRITE = "write"


class Epoch(IntEnum):
    """Which keys protect records (RFC 9001 names them the same way)."""

    INITIAL = 0  # plaintext
    EARLY = 1  # TLS 1.3 0-RTT
    HANDSHAKE = 2  # TLS 1.3 handshake traffic
    APPLICATION = 3  # TLS 1.3 application traffic; TLS 1.2 after ChangeCipherSpec


@quick_init
@dataclass(frozen=True, slots=True)
class Keys12:
    """One direction's TLS 1.2 key material from the key block (RFC 5246 §6.3)."""

    key: bytes = field(repr=False)
    iv: bytes = field(repr=False)
    mac_key: bytes = field(repr=False)
    etm: bool  # encrypt-then-MAC (CBC suites, RFC 7366)


class HandshakePort(Protocol):
    def send(self, raw: bytes) -> None:
        """Queue one encoded handshake message (header included)."""

    def flush(self) -> None:
        """Frame the queued messages into records under the current write keys."""

    def send_ccs(self) -> None: ...

    def send_alert(self, level: AlertLevel, description: AlertDescription) -> None: ...

    def send_early_data(self, data: bytes) -> None:
        """TLS 1.3 client: 0-RTT application data, under the early keys."""

    def install_keys(
        self, direction: Direction, epoch: Epoch, suite: CipherSuite, secret: bytes | Keys12
    ) -> None: ...

    def plaintext(self, version: ProtocolVersion) -> None:
        """Write plaintext records with this record version from now on (back from 0-RTT keys
        after a HelloRetryRequest, or 0x0303 once a ClientHello is out)."""

    def expect_record_version(self, version: ProtocolVersion) -> None:
        """Refuse records of another version from now on (TLS 1.2, once agreed)."""

    def skip_early_data(self, budget: int) -> None:
        """TLS 1.3 server: skip up to ``budget`` bytes of 0-RTT records it cannot (or will not)
        decrypt; 0 stops skipping."""


def protection(
    direction: Direction, epoch: Epoch, suite: CipherSuite, secret: bytes | Keys12
) -> RecordProtection:
    """The record protection for one direction and epoch."""
    if epoch is Epoch.INITIAL:
        return NullProtection(b"\x03\x03")
    if isinstance(secret, Keys12):
        if suite.is_aead:
            return AEAD12(suite, secret.key, secret.iv)
        return CBC12(suite, secret.key, secret.mac_key, secret.etm)
    key, iv = traffic_keys(suite, secret)
    return AEAD13(suite, key, iv)


class RecordPort:
    """The port over the connection's record layer and handshake reassembler."""

    __slots__ = ("_pending", "reassembler", "records")

    def __init__(self, records: RecordLayer, reassembler: HandshakeReassembler) -> None:
        self.records = records
        self.reassembler = reassembler
        self._pending: list[bytes] = []

    def send(self, raw: bytes) -> None:
        self._pending.append(raw)

    def flush(self) -> None:
        pending = self._pending
        if pending:
            data = pending[0] if len(pending) == 1 else b"".join(pending)
            pending.clear()
            self.records.write_records(ContentType.HANDSHAKE, data)

    def discard(self) -> None:
        """Drop what is queued (the connection failed: only the alert goes out)."""
        self._pending.clear()

    def send_ccs(self) -> None:
        self.flush()
        self.records.write_records(ContentType.CHANGE_CIPHER_SPEC, b"\x01")

    def send_alert(self, level: AlertLevel, description: AlertDescription) -> None:
        self.flush()
        self.records.write_records(ContentType.ALERT, bytes((level, description)))

    def send_early_data(self, data: bytes) -> None:
        self.flush()
        self.records.write_records(ContentType.APPLICATION_DATA, data)

    def install_keys(
        self, direction: Direction, epoch: Epoch, suite: CipherSuite, secret: bytes | Keys12
    ) -> None:
        prot = protection(direction, epoch, suite, secret)
        if direction is Direction.WRITE:
            self.flush()
            self.records.write = prot
            return
        if self.reassembler.pending:
            raise UnexpectedMessage("a handshake message spans a change of keys")
        self.records.read = prot

    def plaintext(self, version: ProtocolVersion) -> None:
        self.flush()
        self.records.write = NullProtection(version.to_bytes(2, "big"))

    def expect_record_version(self, version: ProtocolVersion) -> None:
        self.records.check_version = version

    def skip_early_data(self, budget: int) -> None:
        self.records.skip_budget = budget
