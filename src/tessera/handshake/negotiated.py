"""What a handshake negotiated, as frozen records made once and carried by the states.

A :class:`Negotiated12` is made when the ServerHello is sent (server) or read (client), a
:class:`Negotiated13` likewise; the few values learned later (the peer's certificate chain, the
client's view of the server's signature scheme, a TLS 1.3 client's ALPN) make a new record
(``dataclasses.replace``) in the state that learns them. Secrets are not in them: the states
that need a master secret or a key schedule hold it themselves. :func:`connection_info` turns a
record into the public :class:`~tessera.events.ConnectionInfo` when the handshake completes.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from ..crypto.suites import CipherSuite
from ..enums import ProtocolVersion
from ..events import ConnectionInfo
from ..frozen import quick_init
from ..session.resumption import Mechanism, ResumptionDecision


@quick_init
@dataclass(frozen=True, slots=True)
class Negotiated12:
    suite: CipherSuite
    client_random: bytes
    server_random: bytes
    session_id: bytes
    ems: bool
    etm: bool
    secure_renegotiation: bool
    server_name: str | None
    alpn: bytes | None
    resumed_by: Mechanism | None = None
    group: int | None = None
    signature_scheme: int | None = None
    peer_chain: tuple[x509.Certificate, ...] = ()
    peer_chain_der: tuple[bytes, ...] = ()

    version = ProtocolVersion.TLS1_2
    early_data_accepted = False


@quick_init
@dataclass(frozen=True, slots=True)
class Negotiated13:
    suite: CipherSuite
    client_random: bytes
    session_id: bytes  # legacy_session_id (middlebox compatibility)
    server_name: str | None
    alpn: bytes | None
    resumed_by: Mechanism | None = None
    group: int | None = None
    signature_scheme: int | None = None
    early_data_accepted: bool = False
    peer_chain: tuple[x509.Certificate, ...] = ()
    peer_chain_der: tuple[bytes, ...] = ()

    version = ProtocolVersion.TLS1_3
    ems = False
    etm = False
    secure_renegotiation = False


def connection_info(
    n: Negotiated12 | Negotiated13,
    resumption: ResumptionDecision | None,
    handshake_time: float | None,
) -> ConnectionInfo:
    alpn = n.alpn.decode("latin-1") if n.alpn is not None else None
    return ConnectionInfo(
        n.version, n.suite, n.group, n.server_name, alpn, n.peer_chain, n.session_id, n.ems,
        n.etm, n.resumed_by is not None, n.secure_renegotiation, n.signature_scheme,
        n.resumed_by, n.early_data_accepted, resumption, handshake_time,
    )  # fmt: skip
