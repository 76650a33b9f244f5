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

import inspect
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Generic, Protocol, TypeVar, assert_never, overload, runtime_checkable

from ..extras import missing

try:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector
except ModuleNotFoundError as e:  # an extra of the distribution
    raise missing(e) from None

from ..events import HandshakeCompleted, PostHandshakeAuthCompleted, RenegotiationCompleted
from ..session.keyring import TicketKeyring, TicketKeySource
from ..session.resumption import FallbackReason, HandshakeKind, ResumptionDecision
from ..session.resumption.awaited import AsyncSessionStore
from ..session.store import SessionStore
from .facts import (
    Fact,
    HandshakeFailed,
    NotIssued,
    RenegotiationRefused,
    SessionCached,
    StoreFailed,
    TicketsIssued,
)

_HANDSHAKE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


Metric = TypeVar("Metric", "Counter", "Histogram")


class Children(Generic[Metric]):
    """The labelled children of one metric, remembered: prometheus-client's ``labels()``
    checks the values and takes a lock on every call (several per connection); a dict lookup
    does not. The label values are few (versions, kinds, reasons, directions)."""

    __slots__ = ("_known", "_metric")

    def __init__(self, metric: Metric) -> None:
        self._metric: Metric = metric
        self._known: dict[tuple[str, ...], Metric] = {}

    def __call__(self, *values: str) -> Metric:
        child = self._known.get(values)
        if child is None:
            child = self._known[values] = self._metric.labels(*values)
        return child


@runtime_checkable
class KeySchedule(Protocol):
    """A keyring that describes its keys itself (a fleet keyring does)."""

    def key_states(self) -> Iterable[tuple[bytes, str, float, float | None]]:
        """(name, state, created, next change) per key; state: encrypting, decrypt_only or
        pending."""

    def next_rotation(self) -> float | None:
        """When the encrypting key changes (None: not scheduled)."""


class PrometheusObserver:
    """Counts what a server does into a Prometheus registry (a fresh one by default)."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        keyring: TicketKeySource | None = None,
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
        self._store_metrics(r)
        self._front_end_metrics(r)
        self._by = _ByLabels(self)
        self._instrumented = False  # a metered store counts its own errors
        if keyring is not None:
            register_keyring(r, keyring, clock)

    def _store_metrics(self, r: CollectorRegistry) -> None:
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

    def _front_end_metrics(self, r: CollectorRegistry) -> None:
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

    # -- the observer ----------------------------------------------------------------------
    def observe(self, fact: Fact) -> None:
        match fact:
            case ResumptionDecision():
                self._decision(fact)
            case HandshakeCompleted():
                self._completed(fact)
            case HandshakeFailed():
                if fact.during_handshake:
                    sent = "sent" if fact.sent else "received"
                    self.failures.labels(fact.alert.name, sent).inc()
            case TicketsIssued():
                self._by.tickets(_version(fact.version)).inc(fact.count)
            case StoreFailed():
                if not self._instrumented:  # else the metered store counted it already
                    self.store_ops.labels(fact.op, "error").inc()
                self.store_up.set(0)
            case (
                SessionCached()
                | NotIssued()
                | RenegotiationCompleted()
                | RenegotiationRefused()
                | PostHandshakeAuthCompleted()
            ):
                pass
            case _:
                assert_never(fact)

    def _decision(self, d: ResumptionDecision) -> None:
        if d.fallback is not None:
            self._by.fallbacks(d.fallback.value).inc()
        if d.early_data_accepted:
            self.early_data.labels("accepted", "").inc()
        elif d.early_data_offered:
            why = d.early_data_refusal.value if d.early_data_refusal is not None else ""
            self.early_data.labels("rejected", why).inc()

    def _completed(self, event: HandshakeCompleted) -> None:
        info = event.info
        d = info.resumption
        kind = d.kind if d is not None else HandshakeKind.of(info.resumed_by)
        self._by.handshakes(_version(info.version), kind.value).inc()
        if info.handshake_time is not None:
            self._by.duration(kind.value).observe(info.handshake_time)

    # -- front ends ------------------------------------------------------------------------
    def connection_opened(self) -> None:
        self.connections.inc()

    def connection_closed(self, bytes_in: int = 0, bytes_out: int = 0) -> None:
        self.connections.dec()
        self.add_bytes(bytes_in, bytes_out)

    def add_bytes(self, bytes_in: int, bytes_out: int) -> None:
        if bytes_in:
            self._by.bytes("in").inc(bytes_in)
        if bytes_out:
            self._by.bytes("out").inc(bytes_out)

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
    @overload
    def instrument(self, store: AsyncSessionStore) -> AsyncMeteredStore: ...

    @overload
    def instrument(self, store: SessionStore) -> MeteredStore: ...

    def instrument(
        self, store: SessionStore | AsyncSessionStore
    ) -> MeteredStore | AsyncMeteredStore:
        """``store`` wrapped so every operation is counted and timed (an async store, one with
        coroutine methods, gets an async wrapper)."""
        self._instrumented = True
        if isinstance(store, AsyncSessionStore) and is_async_store(store):
            return AsyncMeteredStore(store, self)
        assert isinstance(store, SessionStore)
        return MeteredStore(store, self)

    def record_store(self, op: str, result: str, seconds: float) -> None:
        self._by.store_ops(op, result).inc()
        self._by.store_latency(op).observe(seconds)
        self.store_up.set(0 if result == "error" else 1)


class _ByLabels:
    """The per-connection metrics of an observer, by label values (remembered children)."""

    __slots__ = ("bytes", "duration", "fallbacks", "handshakes", "store_latency", "store_ops",
                 "tickets")  # fmt: skip

    def __init__(self, o: PrometheusObserver) -> None:
        self.handshakes = Children(o.handshakes)
        self.duration = Children(o.duration)
        self.fallbacks = Children(o.fallbacks)
        self.tickets = Children(o.tickets)
        self.bytes = Children(o.bytes)
        self.store_ops = Children(o.store_ops)
        self.store_latency = Children(o.store_latency)


def _version(version: int) -> str:
    return {0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}.get(version, f"0x{version:04x}")


def _found(value: bytes | None) -> str:
    return "miss" if value is None else "hit"


class _Timed:
    """Times one store operation; an exception is recorded as the result "error"."""

    __slots__ = ("metrics", "op", "result", "start")

    def __init__(self, metrics: PrometheusObserver, op: str) -> None:
        self.metrics = metrics
        self.op = op
        self.result = "ok"
        self.start = time.perf_counter()

    def __enter__(self) -> _Timed:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        result = "error" if exc_type is not None else self.result
        self.metrics.record_store(self.op, result, time.perf_counter() - self.start)


class _Metered:
    def __init__(self, metrics: PrometheusObserver) -> None:
        self._metrics = metrics

    def _timed(self, op: str) -> _Timed:
        return _Timed(self._metrics, op)


class MeteredStore(_Metered):
    """A synchronous store, counted and timed (``len()``, ``evictions``, ``health()``... are
    the inner store's)."""

    def __init__(self, inner: SessionStore, metrics: PrometheusObserver) -> None:
        super().__init__(metrics)
        self.inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def __len__(self) -> int:
        size = getattr(self.inner, "__len__", None)
        return int(size()) if callable(size) else 0

    def get(self, key: bytes) -> bytes | None:
        with self._timed("get") as t:
            value = self.inner.get(key)
            t.result = _found(value)
        return value

    def take(self, key: bytes) -> bytes | None:
        with self._timed("take") as t:
            value = self.inner.take(key)
            t.result = _found(value)
        return value

    def put(self, key: bytes, value: bytes, ttl: float) -> None:
        with self._timed("put"):
            self.inner.put(key, value, ttl)

    def add(self, key: bytes, value: bytes, ttl: float) -> bool:
        with self._timed("add") as t:
            stored = bool(self.inner.add(key, value, ttl))
            t.result = "stored" if stored else "exists"
        return stored

    def delete(self, key: bytes) -> None:
        with self._timed("delete"):
            self.inner.delete(key)


class AsyncMeteredStore(_Metered):
    """An async store (coroutine methods), counted and timed."""

    def __init__(self, inner: AsyncSessionStore, metrics: PrometheusObserver) -> None:
        super().__init__(metrics)
        self.inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def get(self, key: bytes) -> bytes | None:
        with self._timed("get") as t:
            value = await self.inner.get(key)
            t.result = _found(value)
        return value

    async def take(self, key: bytes) -> bytes | None:
        with self._timed("take") as t:
            value = await self.inner.take(key)
            t.result = _found(value)
        return value

    async def put(self, key: bytes, value: bytes, ttl: float) -> None:
        with self._timed("put"):
            await self.inner.put(key, value, ttl)

    async def add(self, key: bytes, value: bytes, ttl: float) -> bool:
        with self._timed("add") as t:
            stored = bool(await self.inner.add(key, value, ttl))
            t.result = "stored" if stored else "exists"
        return stored

    async def delete(self, key: bytes) -> None:
        with self._timed("delete"):
            await self.inner.delete(key)


def is_async_store(store: object) -> bool:
    """Whether ``store`` has coroutine methods (an async store)."""
    return inspect.iscoroutinefunction(getattr(store, "get", None))


def register_keyring(
    registry: CollectorRegistry,
    keyring: TicketKeySource,
    clock: Callable[[], float] = time.time,
    before: Callable[[], object] | None = None,
) -> None:
    """Export ``keyring``'s ticket keys from ``registry``, read at scrape time (``before`` runs
    first: a supervisor refreshes its view of a fleet's keys there)."""
    registry.register(_KeyringCollector(keyring, clock, before))


class _KeyringCollector(Collector):
    """Ticket key ages and states, read from the keyring at scrape time.

    A keyring may describe itself (:class:`KeySchedule`: a fleet keyring does), else a
    :class:`~tessera.session.keyring.TicketKeyring`'s ``keys()`` are read (the first one
    encrypts) and rotation comes from ``rotation_interval`` when it generates keys.
    """

    def __init__(self, keyring: TicketKeySource, clock: Callable[[], float],
                 before: Callable[[], object] | None = None) -> None:  # fmt: skip
        self.keyring = keyring
        self.clock = clock
        self.before = before

    def _states(self) -> Iterable[tuple[bytes, str, float]]:
        keyring = self.keyring
        if isinstance(keyring, KeySchedule):
            for name, state, created, _ in keyring.key_states():
                yield name, state, created
        elif isinstance(keyring, TicketKeyring):
            for i, key in enumerate(keyring.keys()):
                yield key.name, "encrypting" if i == 0 else "decrypt_only", key.created

    def _next_rotation(self, now: float) -> float | None:
        keyring = self.keyring
        if isinstance(keyring, KeySchedule):
            at = keyring.next_rotation()
            return None if at is None else max(0.0, float(at) - now)
        if isinstance(keyring, TicketKeyring) and keyring.generate:
            keys = keyring.keys()
            if keys:
                return max(0.0, keys[0].created + keyring.rotation_interval - now)
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
