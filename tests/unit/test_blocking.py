"""TLSSocket's vectored writes: many records go out with sendmsg(), in order, whatever the
kernel accepts per call (partial writes resume in the middle of a record)."""

from __future__ import annotations

import os

import pytest

from tessera.io.blocking import TLSSocket


class ChokingSocket:
    """Accepts at most ``limit`` bytes per sendmsg() call, as a full socket buffer does."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.calls = 0

    def sendmsg(self, buffers: list[bytes | memoryview]) -> int:
        self.calls += 1
        room = self.limit
        for b in buffers:
            take = bytes(b[:room])
            self.data += take
            room -= len(take)
            if not room:
                break
        return self.limit - room


class PlainSocket:
    def __init__(self) -> None:
        self.data = bytearray()

    def sendall(self, data: bytes) -> None:
        self.data += data


@pytest.mark.parametrize("limit", [1, 5, 16389, 16390, 50_000, 1 << 24])
def test_partial_sendmsg_resumes_mid_record(limit: int) -> None:
    records = [os.urandom(16389) for _ in range(5)] + [b"x", os.urandom(300)]
    sock = ChokingSocket(limit)
    tls = TLSSocket.__new__(TLSSocket)
    tls.sock = sock  # type: ignore[assignment]
    if limit == 1:
        records = records[-2:]  # one byte per call: keep it short
    tls._send_vectored(records)
    assert bytes(sock.data) == b"".join(records)


def test_more_records_than_one_call_takes() -> None:
    records = [bytes([i % 256]) * 10 for i in range(1500)]
    sock = ChokingSocket(1 << 30)
    tls = TLSSocket.__new__(TLSSocket)
    tls.sock = sock  # type: ignore[assignment]
    tls._send_vectored(records)
    assert bytes(sock.data) == b"".join(records)
    assert sock.calls == 3  # 512 buffers per call


def test_without_sendmsg_the_records_are_joined() -> None:
    sock = PlainSocket()
    tls = TLSSocket.__new__(TLSSocket)
    tls.sock = sock  # type: ignore[assignment]
    tls._send_vectored([b"ab", b"cd"])
    assert bytes(sock.data) == b"abcd"
