"""The client's session cache, keyed by (host, port, server name).

A TLS 1.2 server gives one session (its id and/or ticket), which replaces the previous one. A
TLS 1.3 server may give several tickets; they are kept (up to ``tickets_per_server``) and each
is handed out once, as RFC 8446 Appendix C.4 asks, unless ``reuse`` is set.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from ..enums import ProtocolVersion
from .model import ClientSession

CacheKey = tuple[str, int, str | None]


class ClientSessionCache:
    def __init__(
        self,
        max_servers: int = 1000,
        tickets_per_server: int = 8,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_servers = max_servers
        self.tickets_per_server = tickets_per_server
        self._clock = clock
        self._data: OrderedDict[CacheKey, list[ClientSession]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: CacheKey, session: ClientSession) -> None:
        with self._lock:
            sessions = self._data.pop(key, [])
            if session.version == ProtocolVersion.TLS1_3:
                sessions = [s for s in sessions if s.version == ProtocolVersion.TLS1_3]
                sessions.append(session)
                del sessions[: -self.tickets_per_server]
            else:
                sessions = [session]
            self._data[key] = sessions
            while len(self._data) > self.max_servers:
                self._data.popitem(last=False)

    def get(self, key: CacheKey, reuse: bool = False) -> ClientSession | None:
        """The newest unexpired session; TLS 1.3 tickets are removed unless ``reuse``."""
        now = self._clock()
        with self._lock:
            sessions = self._data.get(key)
            if not sessions:
                return None
            sessions[:] = [s for s in sessions if not s.expired(now)]
            if not sessions:
                del self._data[key]
                return None
            session = sessions[-1]
            if session.version == ProtocolVersion.TLS1_3 and not reuse:
                sessions.pop()
                if not sessions:
                    del self._data[key]
            return session

    def forget(self, key: CacheKey) -> None:
        with self._lock:
            self._data.pop(key, None)

    def count(self, key: CacheKey) -> int:
        with self._lock:
            return len(self._data.get(key, ()))

    def __len__(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._data.values())
