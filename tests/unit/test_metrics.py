"""Metrics, read back from their registry as Prometheus would scrape them: each app counts in
its own registry, requests by shape, decision, reason and status (with a tenant only when
asked), durations by decision and liveness, the active rules as one digest, and the caches'
bytes read when scraped."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from gateway.cache import BoundedCache
from gateway.metrics import Metrics

REQUEST = ("tasks", "allowed", "-", "200")


def test_requests_are_counted_under_their_labels_and_timed_by_decision_and_liveness() -> None:
    metrics = Metrics()
    refused = ("tasks", "refused", "shape_not_allowed", "403")
    metrics.count_request(REQUEST, "false", 0.003)
    metrics.count_request(REQUEST, "false", 0.2)
    metrics.count_request(refused, "true", 0.001)
    metrics.count_request(refused, "false", 0.001)
    value = metrics.registry.get_sample_value
    names = ("shape", "decision", "reason", "status")
    assert value("shape_gateway_requests_total", dict(zip(names, REQUEST, strict=True))) == 2
    assert value("shape_gateway_requests_total", dict(zip(names, refused, strict=True))) == 2
    timed = {"decision": "allowed", "live": "false"}
    assert value("shape_gateway_request_duration_seconds_count", timed) == 2
    assert value("shape_gateway_request_duration_seconds_sum", timed) == pytest.approx(0.203)
    assert value("shape_gateway_request_duration_seconds_bucket", {**timed, "le": "0.005"}) == 1
    for live in ("true", "false"):
        held = {"decision": "refused", "live": live}
        assert value("shape_gateway_request_duration_seconds_count", held) == 1


def test_two_apps_never_share_a_counter() -> None:
    first, second = Metrics(), Metrics()
    first.count_request(REQUEST, "false", 0.1)
    first.count_upstream(409)
    labels = dict(zip(("shape", "decision", "reason", "status"), REQUEST, strict=True))
    assert second.registry.get_sample_value("shape_gateway_requests_total", labels) is None
    assert first.registry.get_sample_value("shape_gateway_requests_total", labels) == 1


def test_a_tenant_label_is_added_only_when_asked() -> None:
    assert b"tenant=" not in _counted(Metrics(), REQUEST)
    assert b'tenant="acme"' in _counted(Metrics(tenant_labels=True), (*REQUEST, "acme"))


def _counted(metrics: Metrics, labels: tuple[str, ...]) -> bytes:
    metrics.count_request(labels, "false", 0.1)
    return generate_latest(metrics.registry)


def test_upstream_answers_and_health_requests_are_counted_by_status() -> None:
    metrics = Metrics()
    for status in (200, 409, 409):
        metrics.count_upstream(status)
    metrics.count_health("/readyz", 503)
    metrics.count_health("/readyz", 503)
    metrics.count_health("/healthz", 200)
    metrics.count_health("/readyz", 200)
    value = metrics.registry.get_sample_value
    assert value("shape_gateway_upstream_responses_total", {"status": "409"}) == 2
    assert value("shape_gateway_upstream_responses_total", {"status": "200"}) == 1
    assert value("shape_gateway_health_requests_total", {"path": "/readyz", "status": "503"}) == 2
    assert value("shape_gateway_health_requests_total", {"path": "/healthz", "status": "200"}) == 1
    assert value("shape_gateway_health_requests_total", {"path": "/readyz", "status": "200"}) == 1


def test_only_the_active_rules_digest_is_shown() -> None:
    metrics = Metrics()
    metrics.set_rules("aaaaaaaaaaaa")
    metrics.set_rules("bbbbbbbbbbbb")
    value = metrics.registry.get_sample_value
    assert value("shape_gateway_rules_info", {"digest": "bbbbbbbbbbbb"}) == 1
    assert value("shape_gateway_rules_info", {"digest": "aaaaaaaaaaaa"}) is None


def test_cache_bytes_are_read_when_scraped() -> None:
    metrics = Metrics()
    cache: BoundedCache[str, str] = BoundedCache("test-metrics-cache", 10, 1_000_000)
    before = metrics.registry.get_sample_value(
        "shape_gateway_cache_bytes", {"cache": "test-metrics-cache"}
    )
    cache.put("k", "v", 100)
    after = metrics.registry.get_sample_value(
        "shape_gateway_cache_bytes", {"cache": "test-metrics-cache"}
    )
    assert before == 0
    assert after == cache.bytes > 0
