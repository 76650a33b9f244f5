"""The pure pieces of renegotiation: the per-connection rate limit, the version a renegotiation
keeps, and the resumption decision that refuses to resume."""

from __future__ import annotations

import pytest

from tessera import FallbackReason, Mechanism, ProtocolVersion, ServerConfig
from tessera.certs import generate_self_signed
from tessera.errors import ProtocolVersionError
from tessera.handshake import renegotiation
from tessera.handshake.renegotiation import (
    CLIENT_RENEGOTIATIONS_PER_WINDOW,
    RENEGOTIATION_WINDOW,
    RenegotiationLimits,
)
from tessera.messages import ClientHello
from tessera.messages import extensions as X
from tessera.messages.base import encode_handshake
from tessera.session.resumption import ResumptionDecision, resolve12, summarize


def test_limits_admit_a_few_per_window() -> None:
    limits = RenegotiationLimits()
    for i in range(CLIENT_RENEGOTIATIONS_PER_WINDOW):
        assert limits.admit(100.0 + i) is None
    why = limits.admit(110.0)
    assert why is not None and "in 60 s" in why
    assert limits.admit(100.0 + RENEGOTIATION_WINDOW) is None  # the first one left the window
    assert limits.admit(100.0 + RENEGOTIATION_WINDOW) is not None


def hello(*exts: object, legacy: int = 0x0303, session_id: bytes = b"") -> ClientHello:
    return ClientHello(legacy, bytes(32), session_id, (0xC02B,), (0,), tuple(exts))  # type: ignore[arg-type]


def test_a_renegotiation_keeps_tls12() -> None:
    assert renegotiation.version(hello()) == ProtocolVersion.TLS1_2
    both = X.SupportedVersionsOffer((0x0304, 0x0303))
    assert renegotiation.version(hello(both)) == ProtocolVersion.TLS1_2
    with pytest.raises(ProtocolVersionError):
        renegotiation.version(hello(X.SupportedVersionsOffer((0x0304,))))
    with pytest.raises(ProtocolVersionError):
        renegotiation.version(hello(legacy=0x0302))


def decide(ch: ClientHello, refuse: bool) -> ResumptionDecision:
    config = ServerConfig(certificates=(generate_self_signed("ec"),))
    decision = resolve12(config, summarize(ch, encode_handshake(ch)), 0.0, refuse=refuse)
    assert isinstance(decision, ResumptionDecision)  # no store lookup is needed to refuse
    return decision


@pytest.mark.parametrize(
    ("ch", "offered"),
    [
        (hello(X.SessionTicketExt(b"t" * 64)), Mechanism.TICKET),
        (hello(session_id=b"s" * 32), Mechanism.SESSION_ID),
        (hello(X.SessionTicketExt(b"")), None),
    ],
)
def test_refused_resumption_is_decided_without_the_store(
    ch: ClientHello, offered: Mechanism | None
) -> None:
    d = decide(ch, refuse=True)
    assert d.offered is offered and d.resumed_by is None and d.session is None
    expected = FallbackReason.REFUSED_IN_RENEGOTIATION if offered else None
    assert d.fallback is expected
    assert not d.writes
