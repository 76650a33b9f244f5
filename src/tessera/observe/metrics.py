"""Prometheus metrics for a tessera server, on the well-kept ``prometheus-client`` library.

:class:`PrometheusObserver` is an observer (``ServerConfig(observers=(metrics,))``): it turns
the facts a server reports into counters and histograms. Store operations are timed by wrapping
the store (:meth:`PrometheusObserver.instrument`, sync or async); ticket keys are read from the
keyring each time the registry is scraped; front ends report connections and bytes.

Metric names (what no anchor exports together: why resumption fell back, key ages and store
health)::

    tessera_handshakes_total{version, kind=full|session_id|ticket|psk|psk_0rtt}
    tessera_resumption_fallbacks_total{reason}      every reason the core knows, from 0
    tessera_handshake_duration_seconds{kind}        histogram
    tessera_handshake_failures_total{alert, sent}
    tessera_store_operations_total{op, result}      result: hit, miss, ok, stored, exists, error
    tessera_store_operation_duration_seconds{op}    histogram
    tessera_store_up                                1 while the last store operation worked
    tessera_early_data_total{result, reason}
    tessera_tickets_issued_total{version}
    tessera_ticket_keys{state=encrypting|decrypt_only|pending}
    tessera_ticket_key_age_seconds{key, state}      key: the first 8 hex digits of its name
    tessera_ticket_key_rotation_seconds             until the encrypting key is replaced
    tessera_connections_active, tessera_bytes_total{direction=in|out}
    tessera_accept_errors_total{error}              accepts that failed (EMFILE...), retried
    tessera_backend_errors_total                    a proxy's backend could not be reached

Under prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, see
:mod:`tessera.observe.exporter`) the gauges add up the live processes (``store_up``: the lowest).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..session.stats import FallbackReason

if TYPE_CHECKING:
    from ..events import HandshakeCompleted
    from ..session.observer import HandshakeFailed
    from ..session.resumption import ResumptionDecision

_KINDS = ("full", "session_id", "ticket", "psk", "psk_0rtt")
_HANDSHAKE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class PrometheusObserver:
    """Counts what a server does into a Prometheus registry (a fresh one by default)."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        keyring: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.handshakes = Counter(
            "tessera_handshakes", "Completed handshakes, by how they resumed",
            ["version", "kind"], registry=r,
        )  # fmt: skip
        self.fallbacks = Counter(
            "tessera_resumption_fallbacks",
            "Resumption attempts that fell back to a full handshake, by reason",
            ["reason"], registry=r,
        )  # fmt: skip
        for reason in FallbackReason:
            self.fallbacks.labels(reason.value)
        self.duration = Histogram(
            "tessera_handshake_duration_seconds", "Handshake time, first ClientHello to done",
            ["kind"], buckets=_HANDSHAKE_BUCKETS, registry=r,
        )  # fmt: skip
        self.failures = Counter(
            "tessera_handshake_failures", "Connections ended by a fatal alert during the handshake",
            ["alert", "sent"], registry=r,
        )  # fmt: skip
        self.store_ops = Counter(
            "tessera_store_operations", "Session store operations, by result",
            ["op", "result"], registry=r,
        )  # fmt: skip
        self.store_latency = Histogram(
            "tessera_store_operation_duration_seconds", "Session store operation latency",
            ["op"], buckets=_STORE_BUCKETS, registry=r,
        )  # fmt: skip
        self.store_up = Gauge(
            "tessera_store_up", "1 while the last session store operation worked", registry=r,
            multiprocess_mode="livemin",
        )  # fmt: skip
        self.store_up.set(1)
        self.early_data = Counter(
            "tessera_early_data", "0-RTT offers, accepted or rejected (with why)",
            ["result", "reason"], registry=r,
        )  # fmt: skip
        self.tickets = Counter(
            "tessera_tickets_issued", "Session tickets issued", ["version"], registry=r
        )
        self.connections = Gauge("tessera_connections_active", "Connections open now",
                                 registry=r, multiprocess_mode="livesum")  # fmt: skip
        self.bytes = Counter(
            "tessera_bytes", "Application bytes relayed", ["direction"], registry=r
        )
        self.accept_errors = Counter(
            "tessera_accept_errors", "Accepts that failed and were retried after a back-off",
            ["error"], registry=r,
        )  # fmt: skip
        self.backend_errors = Counter(
            "tessera_backend_errors", "Connections whose backend could not be reached", registry=r
        )
        self.cut = Counter(
            "tessera_connections_cut",
            "Connections the server cut or refused to share its slots fairly, by reason",
            ["reason"], registry=r,
        )  # fmt: skip
        self.probes = Counter(
            "tessera_probes", "Connections closed by the client before any byte (health checks)",
            registry=r,
        )  # fmt: skip
        self._instrumented = False  # a metered store counts its own errors
        if keyring is not None:
            register_keyring(r, keyring, clock)

    # -- the observer ----------------------------------------------------------------------
    def observe(self, fact: object) -> None:
        kind = type(fact).__name__
        if kind == "ResumptionDecision":
            self._decision(fact)  # type: ignore[arg-type]
        elif kind == "HandshakeCompleted":
            self._completed(fact)  # type: ignore[arg-type]
        elif kind == "HandshakeFailed":
            self._failed(fact)  # type: ignore[arg-type]
        elif kind == "TicketsIssued":
            self.tickets.labels(_version(fact.version)).inc(fact.count)  # type: ignore[attr-defined]
        elif kind == "StoreFailed":
            if not self._instrumented:  # else the metered store counted it already
                self.store_ops.labels(fact.op, "error").inc()  # type: ignore[attr-defined]
            self.store_up.set(0)

    def _decision(self, d: ResumptionDecision) -> None:
        if d.fallback is not None:
            self.fallbacks.labels(d.fallback.value).inc()
        if d.early_data_accepted:
            self.early_data.labels("accepted", "").inc()
        elif d.early_data_offered:
            why = d.early_data_refusal.value if d.early_data_refusal is not None else ""
            self.early_data.labels("rejected", why).inc()

    def _completed(self, event: HandshakeCompleted) -> None:
        info = event.info
        kind = info.resumption.kind if info.resumption is not None else _kind(info.resumed_by)
        self.handshakes.labels(_version(info.version), kind).inc()
        if info.handshake_time is not None:
            self.duration.labels(kind).observe(info.handshake_time)

    def _failed(self, fact: HandshakeFailed) -> None:
        if fact.during_handshake:
            self.failures.labels(fact.alert.name, "sent" if fact.sent else "received").inc()

    # -- front ends ------------------------------------------------------------------------
    def connection_opened(self) -> None:
        self.connections.inc()

    def connection_closed(self, bytes_in: int = 0, bytes_out: int = 0) -> None:
        self.connections.dec()
        self.add_bytes(bytes_in, bytes_out)

    def add_bytes(self, bytes_in: int, bytes_out: int) -> None:
        if bytes_in:
            self.bytes.labels("in").inc(bytes_in)
        if bytes_out:
            self.bytes.labels("out").inc(bytes_out)

    def accept_failed(self, error: str) -> None:
        """An accept failed (``error``: the errno name, EMFILE...); the server retries."""
        self.accept_errors.labels(error).inc()

    def backend_failed(self) -> None:
        self.backend_errors.inc()

    def connection_cut(self, reason: str) -> None:
        """A connection cut or refused to keep the slots fair (``reason``: per-client limit,
        shed: handshaking, shed: idle, timeout under pressure)."""
        self.cut.labels(reason).inc()

    def probe(self) -> None:
        self.probes.inc()

    # -- stores ----------------------------------------------------------------------------
    def instrument(self, store: Any) -> Any:
        """``store`` wrapped so every operation is counted and timed (an async store, one with
        coroutine methods, gets an async wrapper)."""
        import inspect

        self._instrumented = True
        if inspect.iscoroutinefunction(getattr(store, "get", None)):
            return _AsyncMeteredStore(store, self)
        return _MeteredStore(store, self)

    def record_store(self, op: str, result: str, seconds: float) -> None:
        self.store_ops.labels(op, result).inc()
        self.store_latency.labels(op).observe(seconds)
        self.store_up.set(0 if result == "error" else 1)


def _version(version: int) -> str:
    return {0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}.get(version, f"0x{version:04x}")


def _kind(resumed_by: str | None) -> str:
    return resumed_by if resumed_by in _KINDS else "full"


def _result(op: str, value: object) -> str:
    if op in ("get", "take"):
        return "miss" if value is None else "hit"
    if op == "add":
        return "stored" if value else "exists"
    return "ok"


class _MeteredStore:
    """A synchronous store, counted and timed."""

    def __init__(self, inner: Any, metrics: PrometheusObserver) -> None:
        self.inner = inner
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:  # len(), evictions, health... of the inner store
        return getattr(self.inner, name)

    def __len__(self) -> int:
        return len(self.inner)

    def _run(self, op: str, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            value = getattr(self.inner, op)(*args)
        except Exception:
            self._metrics.record_store(op, "error", time.perf_counter() - start)
            raise
        self._metrics.record_store(op, _result(op, value), time.perf_counter() - start)
        return value

    def get(self, key: bytes) -> bytes | None:
        return self._run("get", key)  # type: ignore[no-any-return]

    def take(self, key: bytes) -> bytes | None:
        return self._run("take", key)  # type: ignore[no-any-return]

    def put(self, key: bytes, value: bytes, ttl: float) -> None:
        self._run("put", key, value, ttl)

    def add(self, key: bytes, value: bytes, ttl: float) -> bool:
        return bool(self._run("add", key, value, ttl))

    def delete(self, key: bytes) -> None:
        self._run("delete", key)


class _AsyncMeteredStore(_MeteredStore):
    """An async store (coroutine methods), counted and timed."""

    async def _arun(self, op: str, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            value = await getattr(self.inner, op)(*args)
        except Exception:
            self._metrics.record_store(op, "error", time.perf_counter() - start)
            raise
        self._metrics.record_store(op, _result(op, value), time.perf_counter() - start)
        return value

    async def get(self, key: bytes) -> bytes | None:  # type: ignore[override]
        return await self._arun("get", key)  # type: ignore[no-any-return]

    async def take(self, key: bytes) -> bytes | None:  # type: ignore[override]
        return await self._arun("take", key)  # type: ignore[no-any-return]

    async def put(self, key: bytes, value: bytes, ttl: float) -> None:  # type: ignore[override]
        await self._arun("put", key, value, ttl)

    async def add(self, key: bytes, value: bytes, ttl: float) -> bool:  # type: ignore[override]
        return bool(await self._arun("add", key, value, ttl))

    async def delete(self, key: bytes) -> None:  # type: ignore[override]
        await self._arun("delete", key)


def register_keyring(
    registry: CollectorRegistry,
    keyring: Any,
    clock: Callable[[], float] = time.time,
    before: Callable[[], object] | None = None,
) -> None:
    """Export ``keyring``'s ticket keys from ``registry``, read at scrape time (``before`` runs
    first: a supervisor refreshes its view of a fleet's keys there)."""
    registry.register(_KeyringCollector(keyring, clock, before))


class _KeyringCollector(Collector):
    """Ticket key ages and states, read from the keyring at scrape time.

    A keyring may describe itself with ``key_states()`` -> iterable of (name, state, created,
    next_change or None) — a fleet keyring does — else its ``keys()`` are read (the first one
    encrypts) and rotation comes from ``rotation_interval`` when it generates keys.
    """

    def __init__(self, keyring: Any, clock: Callable[[], float],
                 before: Callable[[], object] | None = None) -> None:  # fmt: skip
        self.keyring = keyring
        self.clock = clock
        self.before = before

    def _states(self) -> Iterable[tuple[bytes, str, float]]:
        states = getattr(self.keyring, "key_states", None)
        if states is not None:
            for name, state, created, *_ in states():
                yield name, state, created
            return
        for i, key in enumerate(self.keyring.keys()):
            yield key.name, "encrypting" if i == 0 else "decrypt_only", key.created

    def _next_rotation(self, now: float) -> float | None:
        nxt = getattr(self.keyring, "next_rotation", None)
        if nxt is not None:
            at = nxt()
            return None if at is None else max(0.0, float(at) - now)
        keys = self.keyring.keys()
        if getattr(self.keyring, "generate", False) and keys:
            return max(0.0, float(keys[0].created + self.keyring.rotation_interval) - now)
        return None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.before is not None:
            self.before()
        now = self.clock()
        count = GaugeMetricFamily(
            "tessera_ticket_keys", "Ticket keys held, by state", labels=["state"]
        )
        age = GaugeMetricFamily(
            "tessera_ticket_key_age_seconds", "Age of each ticket key", labels=["key", "state"]
        )
        totals = {"encrypting": 0, "decrypt_only": 0, "pending": 0}
        for name, state, created in self._states():
            totals[state] = totals.get(state, 0) + 1
            age.add_metric([name.hex()[:8], state], max(0.0, now - created))
        for state, n in totals.items():
            count.add_metric([state], n)
        yield count
        yield age
        rotation = self._next_rotation(now)
        if rotation is not None:
            g = GaugeMetricFamily(
                "tessera_ticket_key_rotation_seconds", "Seconds until the encrypting key changes"
            )
            g.add_metric([], rotation)
            yield g
