"""Prometheus metrics: one registry per app, so tests and replicas never share counters.

No user or tenant labels (unbounded cardinality); shape names and reason codes are bounded by
the rules and the spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
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
            "Open shape requests (long-polls, SSE) ended by a revocation.",
            registry=r,
        )
        self.revocation_fresh = Gauge(
            "shape_gateway_revocation_state_fresh",
            "1 when this replica's revocation view is confirmed fresh, else 0.",
            registry=r,
        )
