"""Prometheus metrics: one registry per app, requests by route template, pool gauges."""

from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.pool import QueuePool
from starlette.datastructures import State

# A fast API: most answers take a few milliseconds; past 2.5 s is a timeout in all but name.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# The method comes from the client: anything else would let it mint label values.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LABELS = ("method", "route", "status")


class _PoolCollector(Collector):
    """Reads the pool at scrape time, so the request path pays nothing for these gauges."""

    def __init__(self, state: State, max_overflow: int) -> None:
        self._state = state
        self._max_overflow = max_overflow

    def collect(self) -> Iterator[Metric]:
        database = getattr(self._state, "database", None)
        pool = database.engine.pool if database is not None else None
        if not isinstance(pool, QueuePool):
            return
        gauges = (
            ("size", "Connections the pool keeps open.", pool.size()),
            ("max_overflow", "Connections allowed beyond the pool size.", self._max_overflow),
            ("checked_out", "Connections in use by requests.", pool.checkedout()),
            ("checked_in", "Idle connections in the pool.", pool.checkedin()),
            # SQLAlchemy counts overflow from -size; below zero means no overflow in use.
            ("overflow", "Connections open beyond the pool size.", max(pool.overflow(), 0)),
            ("waiting", "Requests waiting in line for a connection.", database.waiting),
        )
        for name, documentation, value in gauges:
            yield GaugeMetricFamily(f"tasks_api_db_pool_{name}", documentation, value=value)


class _StreamCollector(Collector):
    """Live changes at scrape time: open event streams and whether this instance listens."""

    def __init__(self, state: State) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        hub = getattr(self._state, "change_hub", None)
        if hub is not None:
            yield GaugeMetricFamily(
                "tasks_api_event_streams_open",
                "Event streams open on this instance.",
                value=hub.open_streams,
            )
        listener = getattr(self._state, "change_listener", None)
        if listener is not None:
            yield GaugeMetricFamily(
                "tasks_api_change_listener_connected",
                "1 while the LISTEN connection is up (held only while streams are open).",
                value=int(listener.listening.is_set()),
            )


class Metrics:
    """The app's registry (a global one would clash between apps in one process)."""

    def __init__(self, state: State, max_overflow: int) -> None:
        # A `_created` sample per series would double the scrape; nothing here reads them.
        # (Process-wide, like the registries' only users: this app's metrics.)
        disable_created_metrics()
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.registry.register(_PoolCollector(state, max_overflow))
        self.registry.register(_StreamCollector(state))
        self._requests = Counter(
            "tasks_api_http_requests",
            "HTTP requests answered, by route template, method and status.",
            _LABELS,
            registry=self.registry,
        )
        self._latency = Histogram(
            "tasks_api_http_request_duration_seconds",
            "Time from the request's arrival to the end of its response.",
            _LABELS,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # `.labels()` takes a lock and builds a tuple; a route's children are looked up once.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        if method not in _METHODS:
            method = "OTHER"
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            labels = (method, route, str(status))
            children = self._requests.labels(*labels), self._latency.labels(*labels)
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition in the format the scraper asked for (OpenMetrics or text)."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type
