"""Delivery in arbitrary pieces gives the same result: transport chunks of any size, and
plaintext handshake messages re-cut into records at arbitrary points."""

from __future__ import annotations

from collections.abc import Iterable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pair.helpers import (
    MAX_FRAGMENT,
    Certs,
    Direction,
    Record,
    World,
    split_messages,
)
from tessera.enums import ContentType
from tessera.events import ApplicationData

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SUITES = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES256-SHA384",
    "AES128-SHA",
]


def chunker_from(sizes: list[int]):  # type: ignore[no-untyped-def]
    """Cut every delivery into pieces of the given sizes (cycled)."""

    def chunk(data: bytes) -> Iterable[bytes]:
        pos, i = 0, 0
        while pos < len(data):
            n = sizes[i % len(sizes)]
            yield data[pos : pos + n]
            pos += n
            i += 1

    return chunk


def recut(cuts: list[int]):  # type: ignore[no-untyped-def]
    """A tamper hook that joins each flight's plaintext handshake bytes and re-frames them into
    records of the given sizes (cycled), keeping everything else as it is."""

    def hook(direction: Direction, records: list[Record]) -> list[Record]:
        out: list[Record] = []
        plain = b""
        version = 0x0303
        for r in records:
            if r.content_type == ContentType.HANDSHAKE and not r.encrypted:
                plain += r.fragment
                version = r.version
                continue
            out.extend(_cut(plain, version, cuts))
            plain = b""
            out.append(r)
        out.extend(_cut(plain, version, cuts))
        return out

    return hook


def _cut(data: bytes, version: int, cuts: list[int]) -> list[Record]:
    out, pos, i = [], 0, 0
    while pos < len(data):
        n = min(cuts[i % len(cuts)], MAX_FRAGMENT)
        out.append(Record(ContentType.HANDSHAKE, data[pos : pos + n], version))
        pos += n
        i += 1
    return out


def _check(pair) -> None:  # type: ignore[no-untyped-def]
    pair.handshake()
    assert pair.client.info.cipher_suite == pair.server.info.cipher_suite
    pair.client.send_data(b"x" * 3000)
    pair.pump()
    got = b"".join(e.data for e in pair.server_events if isinstance(e, ApplicationData))
    assert got == b"x" * 3000


@SETTINGS
@given(
    sizes=st.lists(st.integers(1, 700), min_size=1, max_size=8),
    suite=st.sampled_from(SUITES),
    resume=st.booleans(),
)
def test_any_transport_chunking(certs: Certs, sizes: list[int], suite: str, resume: bool) -> None:
    w = World(certs)
    client, server = w.client_config(cipher_suites=suite), w.server_config()
    if resume:
        w.connect(client, server)
    _check(w.pair(client, server, chunker=chunker_from(sizes)))
    assert resume is (server.statistics["resumed"] == 1)


@SETTINGS
@given(
    cuts=st.lists(st.integers(1, 400), min_size=1, max_size=8),
    suite=st.sampled_from(SUITES),
    resume=st.booleans(),
)
def test_any_record_fragmentation_of_handshake_messages(
    certs: Certs, cuts: list[int], suite: str, resume: bool
) -> None:
    w = World(certs)
    client, server = w.client_config(cipher_suites=suite), w.server_config()
    if resume:
        w.connect(client, server)
    pair = w.pair(client, server, tamper=recut(cuts))
    _check(pair)
    # The cuts really happened: the first flight went out as that many records.
    first = pair.sent[Direction.C2S][0]
    msgs, rest = split_messages(first[5:])
    assert rest == b"" and len(msgs) == 1


@SETTINGS
@given(group=st.integers(1, 5), cuts=st.lists(st.integers(1, 50), min_size=1, max_size=4))
def test_many_messages_per_record_and_tiny_records(
    certs: Certs, group: int, cuts: list[int]
) -> None:
    """Several flights' worth of small records, delivered byte by byte in places."""
    w = World(certs)
    pair = w.pair(tamper=recut(cuts), chunker=chunker_from([group, 1, 200]))
    _check(pair)
