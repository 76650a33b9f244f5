"""A ClientHello read once: what the server's handshake and the resumption decision ask of it.

The decoded message keeps every extension (each one decoded strictly); the summary pulls out,
once, the values that version negotiation, the TLS 1.2 and TLS 1.3 states and the resumption
resolvers need, so no two of them look the same thing up differently.
"""

from __future__ import annotations

from typing import NamedTuple

from ...enums import ProtocolVersion
from ...messages import ClientHello
from ...messages import extensions as X

# How many offered PSK identities the server looks at (Go looks at 5). The rest are ignored,
# never fatal: each one may cost a store round trip (single-use tickets) or an unseal.
MAX_PSK_IDENTITIES = 8


class HelloSummary(NamedTuple):
    """Immutable (a named tuple: built for every ClientHello, cheaper than a frozen
    dataclass)."""

    hello: ClientHello
    raw: bytes  # the ClientHello as received, with its handshake header
    server_name: str | None
    session_id: bytes
    offers_tls13: bool
    ems: bool  # extended_master_secret offered
    etm: bool  # encrypt_then_mac offered
    ticket: bytes | None  # the TLS 1.2 session_ticket extension (b"": asks for one)
    psks: X.OfferedPsks | None
    psk_modes: tuple[int, ...] | None
    early_data: bool
    post_handshake_auth: bool = False  # TLS 1.3: the client may be asked after the handshake

    def __repr__(self) -> str:
        return (
            f"HelloSummary(server_name={self.server_name!r}, tls13={self.offers_tls13}, "
            f"session_id={len(self.session_id)} bytes, ticket={self.ticket is not None}, "
            f"psks={0 if self.psks is None else len(self.psks.identities)}, "
            f"early_data={self.early_data})"
        )

    @property
    def cipher_suites(self) -> tuple[int, ...]:
        return self.hello.cipher_suites

    @property
    def psk_identities(self) -> tuple[X.PskIdentity, ...]:
        """The identities the server considers, in the client's order (at most
        :data:`MAX_PSK_IDENTITIES`)."""
        if self.psks is None:
            return ()
        return self.psks.identities[:MAX_PSK_IDENTITIES]


def sni_of(ch: ClientHello) -> str | None:
    ext = ch.find(X.ServerName)
    return None if ext is None else normalize_sni(ext.host_name)


def normalize_sni(host_name: str) -> str:
    return host_name.lower().rstrip(".")


def summarize(ch: ClientHello, raw: bytes) -> HelloSummary:
    by_type = ch.by_type
    sni = by_type.get(X.ServerName)
    sv = by_type.get(X.SupportedVersionsOffer)
    ticket = by_type.get(X.SessionTicketExt)
    modes = by_type.get(X.PskKeyExchangeModes)
    psks = by_type.get(X.OfferedPsks)
    return HelloSummary(
        hello=ch,
        raw=raw,
        server_name=normalize_sni(sni.host_name) if isinstance(sni, X.ServerName) else None,
        session_id=ch.session_id,
        offers_tls13=(
            isinstance(sv, X.SupportedVersionsOffer) and ProtocolVersion.TLS1_3 in sv.versions
        ),
        ems=X.ExtendedMasterSecret in by_type,
        etm=X.EncryptThenMac in by_type,
        ticket=ticket.ticket if isinstance(ticket, X.SessionTicketExt) else None,
        psks=psks if isinstance(psks, X.OfferedPsks) else None,
        psk_modes=modes.modes if isinstance(modes, X.PskKeyExchangeModes) else None,
        early_data=X.EarlyDataIndication in by_type,
        post_handshake_auth=X.PostHandshakeAuth in by_type,
    )
