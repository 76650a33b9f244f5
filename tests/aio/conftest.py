"""The asyncio suite runs every test under the default event loop and under uvloop.

``run(coro)`` runs a coroutine on a fresh loop of the test's kind, bounded in time. The
``peers`` helpers of the interop suite (real openssl, node, curl) are importable here too.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interop"))

T = TypeVar("T")
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.SelectorEventLoop,
    "uvloop": uvloop.new_event_loop,
}
Runner = Callable[..., Any]


@pytest.fixture(params=sorted(LOOPS))
def loop_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def run(loop_name: str) -> Callable[[Coroutine[Any, Any, T]], T]:
    factory = LOOPS[loop_name]

    def runner(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        async def bounded() -> T:
            loop = asyncio.get_running_loop()
            assert (type(loop).__module__.startswith("uvloop")) == (loop_name == "uvloop")
            return await asyncio.wait_for(coro, timeout)

        with asyncio.Runner(loop_factory=factory) as r:
            return r.run(bounded())

    return runner
