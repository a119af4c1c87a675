"""Prometheus metrics: one registry per app, so tests and replicas never share counters.

No user or tenant labels by default (unbounded cardinality); shape names (bounded by the
rules; a name they lack is `unknown`, a route that names no shape `-`) and reasons (error
codes and a few fixed words, all in docs/operations.md) are labels.
`GATEWAY_METRICS_TENANT_LABELS=true` adds a tenant label to the request counter for small
fleets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.cache import cache_sizes

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BYTES_BUCKETS = (100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000)


@dataclass
class Metrics:
    tenant_labels: bool = False
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self._children: dict[tuple[str, ...], Any] = {}
        r = self.registry
        labels = ["shape", "decision", "reason", "status"] + (
            ["tenant"] if self.tenant_labels else []
        )
        self.requests = Counter(
            "shape_gateway_requests_total",
            "Requests by shape, decision, reason code and status.",
            labels,
            registry=r,
        )
        self.duration = Histogram(
            "shape_gateway_request_duration_seconds",
            "Request duration, by decision and whether it was live.",
            ["decision", "live"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.health_requests = Counter(
            "shape_gateway_health_requests_total",
            "Requests to /healthz, /readyz and /metrics (not audited), by path and status.",
            ["path", "status"],
            registry=r,
        )
        self.response_bytes = Histogram(
            "shape_gateway_response_bytes",
            "Body bytes streamed to clients per proxied request.",
            buckets=BYTES_BUCKETS,
            registry=r,
        )
        self.live_connections = Gauge(
            "shape_gateway_live_connections",
            "Live shape requests (long-polls, SSE) held open on this replica.",
            registry=r,
        )
        self.upstream_errors = Counter(
            "shape_gateway_upstream_errors_total",
            "Upstream failures by kind (unavailable, timeout, misconfigured, aborted).",
            ["kind"],
            registry=r,
        )
        self.rules_reloads = Counter(
            "shape_gateway_rules_reloads_total", "Rules reloads that changed the rules.", registry=r
        )
        self.rules_reload_failures = Counter(
            "shape_gateway_rules_reload_failures_total",
            "Rules reloads that failed (the last good rules stayed active).",
            registry=r,
        )
        self.rules_info = Gauge(
            "shape_gateway_rules_info", "The active rules, by digest (value 1).", ["digest"],
            registry=r,
        )  # fmt: skip
        self.limited = Counter(
            "shape_gateway_limit_refusals_total",
            "Requests refused by rate limits or live-connection caps, by code.",
            ["code"],
            registry=r,
        )
        self.unauthenticated_refusals = Counter(
            "shape_gateway_unauthenticated_refusals_total",
            "Refusals of callers without a valid token (their log lines are sampled), by code.",
            ["reason"],
            registry=r,
        )
        self.connections_refused = Counter(
            "shape_gateway_connections_refused_total",
            "Client connections closed at once because GATEWAY_MAX_CONNECTIONS were open.",
            registry=r,
        )
        self.write_timeouts = Counter(
            "shape_gateway_write_timeouts_total",
            "Client connections aborted because their response made no write progress for "
            "GATEWAY_WRITE_TIMEOUT (the client stopped reading).",
            registry=r,
        )
        self.security_events_dropped = Counter(
            "shape_gateway_security_events_dropped_total",
            "Security events not written to the security stream (queue full).",
            registry=r,
        )
        self.revocation_lag = Histogram(
            "shape_gateway_revocation_lag_seconds",
            "Time from a revocation event being accepted to it being applied on this replica.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.revocations_applied = Counter(
            "shape_gateway_revocations_applied_total",
            "Revocation events applied on this replica, by type.",
            ["type"],
            registry=r,
        )
        self.streams_cut = Counter(
            "shape_gateway_streams_cut_total",
            "Open requests (long-polls, SSE streams, event feeds, bodies being read) ended "
            "by a revocation.",
            registry=r,
        )
        self.dependency_up = Gauge(
            "shape_gateway_dependency_up",
            "0 while a Redis job (kind redis) or an upstream (kind upstream) is failing, else 1.",
            ["kind", "name"],
            registry=r,
        )
        self.upstream_responses = Counter(
            "shape_gateway_upstream_responses_total",
            "Electric's answers passed through to clients, by status (its own 4xx and 5xx too).",
            ["status"],
            registry=r,
        )
        self.upstream_client_requests = Counter(
            "shape_gateway_upstream_client_requests_total",
            "Client requests answered through an upstream exchange (joined or not).",
            registry=r,
        )
        self.upstream_requests = Counter(
            "shape_gateway_upstream_requests_total",
            "Requests the gateway sent upstream (one per exchange: collapsing makes this fewer "
            "than the client requests).",
            registry=r,
        )
        self.upstream_joins = Counter(
            "shape_gateway_upstream_joins_total",
            "Client requests that joined an identical upstream request already under way (or a "
            "snapshot just answered) instead of sending their own (GATEWAY_COLLAPSE).",
            registry=r,
        )
        self.slow_reader_drops = Counter(
            "shape_gateway_slow_reader_drops_total",
            "Clients cut because they fell a whole buffer behind the other clients sharing "
            "their upstream exchange.",
            registry=r,
        )
        self.revocation_fresh = Gauge(
            "shape_gateway_revocation_state_fresh",
            "1 when this replica's revocation view is confirmed fresh, else 0.",
            registry=r,
        )
        r.register(_CacheBytes())
        self.admin_auth_failures = Counter(
            "shape_gateway_admin_auth_failures_total",
            "Admin API requests without the admin token: refused (401), or limited (429: the "
            "address failed too often).",
            ["outcome"],
            registry=r,
        )

    def count_request(self, labels: tuple[str, ...], live: str, seconds: float) -> None:
        """The per-request counter and duration, their labelled children looked up once each
        (prometheus_client's `labels()` takes a lock and builds a key on every call)."""
        children = self._children
        counter = children.get(labels)
        if counter is None:
            counter = children[labels] = self.requests.labels(*labels)
        counter.inc()
        key = ("duration", labels[1], live)
        histogram = children.get(key)
        if histogram is None:
            histogram = children[key] = self.duration.labels(labels[1], live)
        histogram.observe(seconds)

    def count_upstream(self, status: int) -> None:
        key = ("upstream", str(status))
        counter = self._children.get(key)
        if counter is None:
            counter = self._children[key] = self.upstream_responses.labels(str(status))
        counter.inc()

    def count_health(self, path: str, status: int) -> None:
        key = ("health", path, str(status))
        counter = self._children.get(key)
        if counter is None:
            counter = self._children[key] = self.health_requests.labels(path, str(status))
        counter.inc()

    def set_rules(self, digest: str) -> None:
        self.rules_info.clear()
        self.rules_info.labels(digest).set(1)


class _CacheBytes(Collector):
    """`shape_gateway_cache_bytes{cache}`: the hot path's cache's estimated size, read when
    scraped (`decisions`, bounded: gateway/decisions.py)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "shape_gateway_cache_bytes",
            "Estimated bytes held by the hot path's decisions cache (tokens, identities, plans).",
            labels=["cache"],
        )
        for name, size in sorted(cache_sizes().items()):
            family.add_metric([name], size)
        yield family
