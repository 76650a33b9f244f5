"""The engine's end: an async store is closed while the loop runs (bounded, never raising), and
what a transport hits after its connection has gone is one log line, not a traceback."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tessera.io.engine import loop_error
from tessera.session.resumption.awaited import close_store


class Closable:
    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.closed = False

    async def close(self) -> None:
        if self.behaviour == "raise":
            raise ConnectionError("Redis went away")
        if self.behaviour == "hang":
            await asyncio.sleep(3600)
        self.closed = True


def test_close_store_closes_and_reports() -> None:
    ok = Closable("ok")
    assert asyncio.run(close_store(ok)) is None and ok.closed
    assert asyncio.run(close_store(Closable("raise"))) == "ConnectionError: Redis went away"
    assert asyncio.run(close_store(Closable("hang"), timeout=0.05)) == "no answer in 0.05 s"
    assert asyncio.run(close_store(object())) is None  # nothing to close
    assert asyncio.run(close_store(None)) is None


def test_a_transport_error_is_one_line(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.WARNING, logger="tessera.engine"):
            loop_error(loop, {"message": "Fatal error on SSL protocol", "transport": object(),
                              "exception": RuntimeError("the handler is closed")})  # fmt: skip
        [record] = caplog.records
        assert record.getMessage() == (
            "event loop: Fatal error on SSL protocol: RuntimeError: the handler is closed"
        )
        assert record.exc_info is None  # no traceback
    finally:
        loop.close()


def test_other_errors_keep_their_traceback(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            loop_error(loop, {"message": "Exception in callback", "exception": KeyError("x")})
        [record] = caplog.records
        assert record.exc_info is not None and record.exc_info[0] is KeyError
    finally:
        loop.close()
