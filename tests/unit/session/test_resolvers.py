"""The pure resolvers, driven table by table with scripted store answers: each row gives what
the store says to each operation the resolution asks for, and the decision it must reach."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from tessera import ServerConfig, TicketKey, TicketKeyring
from tessera.certs import generate_self_signed
from tessera.crypto.suites import BY_CODE
from tessera.enums import ProtocolVersion, PskKeyExchangeMode
from tessera.errors import DecryptError, StoreError
from tessera.messages import ClientHello
from tessera.messages import extensions as X
from tessera.messages.base import encode_handshake
from tessera.session.model import ServerSession
from tessera.session.resumption import (
    EarlyDataRefusal,
    FallbackReason,
    LookupAnswer,
    Mechanism,
    Outcome,
    Pending,
    Psk13Context,
    ResumptionDecision,
    StoreWrite,
    resolve12,
    resolve13,
    session_id_key,
    stateful_ticket_key,
    summarize,
)
from tessera.session.resumption.decide import (
    SessionIdAnswer,
    SingleUseTicketAnswer,
    StrikeMarkAnswer,
)
from tessera.session.store import MemoryStore

NOW = 1_700_000_000.0
SUITE12 = 0xC02B  # ECDHE-ECDSA-AES128-GCM-SHA256
SUITE13 = BY_CODE[0x1301]
CERT = generate_self_signed("ec")
SECRET = bytes(range(48))


def config(**kw: object) -> ServerConfig:
    kw.setdefault("certificates", (CERT,))
    kw.setdefault("clock", lambda: NOW)
    kw.setdefault(
        "ticket_keyring", TicketKeyring([TicketKey.generate(NOW - 10)], clock=lambda: NOW)
    )
    return ServerConfig(**kw)  # type: ignore[arg-type]


def session12(**kw: object) -> ServerSession:
    values: dict[str, object] = {
        "version": ProtocolVersion.TLS1_2, "cipher_suite": SUITE12, "secret": SECRET,
        "extended_master_secret": True, "created": NOW - 5, "lifetime": 300,
        "server_name": "localhost",
    }  # fmt: skip
    values.update(kw)
    return ServerSession(**values)  # type: ignore[arg-type]


def session13(**kw: object) -> ServerSession:
    values: dict[str, object] = {
        "version": ProtocolVersion.TLS1_3, "cipher_suite": SUITE13.code,
        "secret": bytes(32), "extended_master_secret": False, "created": NOW - 5,
        "lifetime": 300, "server_name": "localhost", "ticket_age_add": 7,
        "max_early_data": 1024,
    }  # fmt: skip
    values.update(kw)
    return ServerSession(**values)  # type: ignore[arg-type]


def hello12(*, session_id: bytes = b"", ticket: bytes | None = None) -> object:
    exts: list[X.Extension] = [X.ServerName("localhost"), X.ExtendedMasterSecret()]
    if ticket is not None:
        exts.append(X.SessionTicketExt(ticket))
    ch = ClientHello(0x0303, bytes(32), session_id, (SUITE12,), (0,), tuple(exts))
    return summarize(ch, encode_handshake(ch))


def hello13(identities: Sequence[bytes], early: bool = False) -> object:
    exts: list[X.Extension] = [
        X.ServerName("localhost"),
        X.SupportedVersionsOffer((0x0304,)),
        X.PskKeyExchangeModes((PskKeyExchangeMode.psk_dhe_ke,)),
    ]
    if early:
        exts.append(X.EarlyDataIndication())
    ids = tuple(X.PskIdentity(i, (5000 + 7) & 0xFFFFFFFF) for i in identities)
    exts.append(X.OfferedPsks(ids, tuple(bytes(32) for _ in ids)))
    ch = ClientHello(0x0303, bytes(32), bytes(32), (SUITE13.code,), (0,), tuple(exts))
    return summarize(ch, encode_handshake(ch))


def pc(early: bool = False, retried: bool = False) -> Psk13Context:
    return Psk13Context("localhost", None, SUITE13, NOW, retried, early)


@dataclass
class Binders:
    """A scripted binder check: records the identities checked; ``bad`` ones fail."""

    bad: set[int] = field(default_factory=set)
    checked: list[int] = field(default_factory=list)

    def __call__(self, index: int, session: ServerSession) -> None:
        self.checked.append(index)
        if index in self.bad:
            raise DecryptError("the PSK binder does not verify")


def run(outcome: Outcome, answers: Sequence[LookupAnswer]) -> tuple[ResumptionDecision, list[str]]:
    """Feed the scripted answers, one per pending operation, in order; returns the decision and
    the operations asked for."""
    asked: list[str] = []
    script = list(answers)
    while isinstance(outcome, Pending):
        ops = outcome.operations
        asked += [op.op for op in ops]
        given = tuple(script.pop(0) for _ in ops)
        outcome = outcome.then.answer(given)
    assert script == [], f"answers left over: {script}"
    return outcome, asked


# -- TLS 1.2 --------------------------------------------------------------------------------------
SID = b"s" * 32

TLS12_SESSION_ID_ROWS = [
    # (what the store says to the get, resumed by, fallback, writes)
    (session12().to_bytes(), Mechanism.SESSION_ID, None, ()),
    (None, None, FallbackReason.UNKNOWN_SESSION_ID, ()),
    (StoreError("timed out"), None, FallbackReason.STORE_UNAVAILABLE, ()),
    (b"garbage", None, FallbackReason.SESSION_CORRUPT, ("delete",)),
    (session12(created=NOW - 400).to_bytes(), None, FallbackReason.SESSION_EXPIRED, ("delete",)),
    (session12(server_name="other").to_bytes(), None, FallbackReason.SNI_MISMATCH, ()),
    (session12(cipher_suite=0xC02F).to_bytes(), None, FallbackReason.CIPHER_MISMATCH, ()),
]


@pytest.mark.parametrize(("answer", "resumed_by", "fallback", "writes"), TLS12_SESSION_ID_ROWS)
def test_tls12_session_id(
    answer: LookupAnswer, resumed_by: Mechanism | None, fallback: FallbackReason | None,
    writes: tuple[str, ...],
) -> None:  # fmt: skip
    outcome = resolve12(config(ticket_keyring=None), hello12(session_id=SID), NOW)  # type: ignore[arg-type]
    assert isinstance(outcome, Pending) and isinstance(outcome.then, SessionIdAnswer)
    assert [(op.op, op.key) for op in outcome.operations] == [("get", session_id_key(SID))]
    d, asked = run(outcome, [answer])
    assert asked == ["get"]
    assert d.offered is Mechanism.SESSION_ID and d.resumed_by is resumed_by
    assert d.fallback is fallback
    assert tuple(w.op for w in d.writes) == writes
    # No ticket asked for: a full handshake caches its session under a fresh id instead.
    assert (d.tickets, d.session_id_cached) == (0, resumed_by is None)


def test_tls12_ticket_is_decided_without_the_store() -> None:
    cfg = config()
    assert cfg.sealer is not None
    ticket = cfg.sealer.seal(session12().to_bytes(), bytes(16))
    assert ticket is not None
    d = resolve12(cfg, hello12(ticket=ticket), NOW)  # type: ignore[arg-type]
    assert isinstance(d, ResumptionDecision)  # no Pending: nothing to ask the store
    assert d.resumed_by is Mechanism.TICKET and not d.renew_ticket and d.tickets == 0


def test_tls12_ticket_under_an_older_key_is_renewed() -> None:
    old, new = TicketKey.generate(NOW - 20), TicketKey.generate(NOW - 10)
    ring = TicketKeyring([old], clock=lambda: NOW)
    cfg = config(ticket_keyring=ring)
    assert cfg.sealer is not None
    ticket = cfg.sealer.seal(session12().to_bytes(), bytes(16))
    ring.install([new, old])
    d = resolve12(cfg, hello12(ticket=ticket), NOW)  # type: ignore[arg-type]
    assert isinstance(d, ResumptionDecision)
    assert d.resumed_by is Mechanism.TICKET and d.renew_ticket and d.tickets == 1
    assert d.key_name == old.name


@pytest.mark.parametrize(
    ("ticket", "fallback"),
    [
        (b"x" * 10, FallbackReason.TICKET_MALFORMED),
        (bytes(16) + bytes(80), FallbackReason.TICKET_UNKNOWN_KEY),
    ],
)
def test_tls12_bad_tickets_fall_back(ticket: bytes, fallback: FallbackReason) -> None:
    d = resolve12(config(), hello12(ticket=ticket), NOW)  # type: ignore[arg-type]
    assert isinstance(d, ResumptionDecision)
    assert d.offered is Mechanism.TICKET and d.fallback is fallback
    assert d.tickets == 1  # a fresh ticket after the full handshake


# -- TLS 1.3 --------------------------------------------------------------------------------------
def stateful() -> ServerConfig:
    return config(ticket_keyring=None, stateful_tickets=True, max_early_data_size=1024)


TLS13_STATEFUL_ROWS = [
    # (answers to the takes, in order, then the add if any; resumed; fallback; identity index;
    #  operations asked)
    ([session13().to_bytes()], True, None, 0, ["take"]),
    ([None, session13().to_bytes()], True, None, 1, ["take", "take"]),
    ([None, None], False, FallbackReason.PSK_ALREADY_USED, None, ["take", "take"]),
    ([StoreError("down")], False, FallbackReason.STORE_UNAVAILABLE, None, ["take"]),
    ([b"junk", None], False, FallbackReason.TICKET_MALFORMED, None, ["take", "take"]),
    (
        [session13(created=NOW - 400).to_bytes(), None],
        False,
        FallbackReason.TICKET_EXPIRED,
        None,
        ["take", "take"],
    ),
]


@pytest.mark.parametrize(("answers", "resumed", "fallback", "index", "asked"), TLS13_STATEFUL_ROWS)
def test_tls13_single_use_tickets(
    answers: list[LookupAnswer], resumed: bool, fallback: FallbackReason | None,
    index: int | None, asked: list[str],
) -> None:  # fmt: skip
    binders = Binders()
    outcome = resolve13(stateful(), hello13([b"a" * 32, b"b" * 32]), pc(), binders)  # type: ignore[arg-type]
    assert isinstance(outcome, Pending) and isinstance(outcome.then, SingleUseTicketAnswer)
    assert outcome.operations[0].key == stateful_ticket_key(b"a" * 32)
    d, ops = run(outcome, answers)
    assert ops == asked
    assert d.resumed == resumed and d.fallback is fallback and d.psk_index == index
    assert binders.checked == ([] if index is None else [index])
    assert d.tickets == (1 if resumed else 2)  # one fresh ticket after a resumption


@pytest.mark.parametrize(
    ("mark", "accepted", "refusal"),
    [
        (True, True, None),
        (False, False, EarlyDataRefusal.REPLAY),
        (StoreError("down"), False, EarlyDataRefusal.STORE_UNAVAILABLE),
    ],
)
def test_tls13_strike_register(
    mark: LookupAnswer, accepted: bool, refusal: EarlyDataRefusal | None
) -> None:
    cfg = config(max_early_data_size=1024, session_store=MemoryStore())
    assert cfg.sealer is not None
    ticket = cfg.sealer.seal(session13().to_bytes(), bytes(16))
    assert ticket is not None
    outcome = resolve13(cfg, hello13([ticket], early=True), pc(early=True), Binders())  # type: ignore[arg-type]
    assert isinstance(outcome, Pending) and isinstance(outcome.then, StrikeMarkAnswer)
    assert [op.op for op in outcome.operations] == ["add"]
    d, _ = run(outcome, [mark])
    assert d.resumed_by is Mechanism.PSK
    assert d.early_data_accepted is accepted and d.early_data_refusal is refusal


def test_tls13_bad_binder_is_fatal_and_nothing_else_is_tried() -> None:
    cfg = config()
    assert cfg.sealer is not None
    ticket = cfg.sealer.seal(session13().to_bytes(), bytes(16))
    assert ticket is not None
    binders = Binders(bad={0})
    with pytest.raises(DecryptError):
        resolve13(cfg, hello13([ticket, ticket]), pc(), binders)  # type: ignore[arg-type]
    assert binders.checked == [0]


@pytest.mark.parametrize(
    ("kw", "resumed", "tickets"),
    [
        ({}, False, 2),
        ({"num_tickets": 4}, False, 4),
        ({"ticket_keyring": None}, False, 0),  # nothing can make a ticket
    ],
)
def test_tls13_number_of_tickets_is_decided(kw: dict[str, object], resumed: bool,
                                            tickets: int) -> None:  # fmt: skip
    d = resolve13(config(**kw), hello13([b"u" * 32]), pc(), Binders())  # type: ignore[arg-type]
    assert isinstance(d, ResumptionDecision) and d.resumed == resumed and d.tickets == tickets


def test_continuations_are_named_and_keep_secrets_out_of_their_repr() -> None:
    cfg = stateful()
    outcome = resolve13(cfg, hello13([b"a" * 32]), pc(), Binders())  # type: ignore[arg-type]
    assert isinstance(outcome, Pending)
    text = repr(outcome)
    assert "SingleUseTicketAnswer" in text and "lambda" not in text
    d, _ = run(outcome, [session13().to_bytes()])
    assert SECRET.hex() not in repr(d) and bytes(32).hex() not in repr(d)
    assert StoreWrite("put", b"k", SECRET).__repr__().find(SECRET.hex()) == -1
