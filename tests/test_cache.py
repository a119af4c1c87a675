"""Hot-path caches bounded in bytes as well as entries, and what large queries cost them."""

from __future__ import annotations

import gc
import tracemalloc

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.cache import ENTRY_OVERHEAD, BoundedCache, cache_sizes, cached
from gateway.shape.client_where import check_client_where
from gateway.shape.params import parse_shape_query
from gateway.shape.plan import plan_upstream_request
from gateway.upstream.client import _head
from tests.factories import make_identity, make_rules, make_token
from tests.gateway import GatewayFactory


def test_the_least_recently_used_entries_go_when_the_bytes_are_spent() -> None:
    cache: BoundedCache[str, str] = BoundedCache("t", max_entries=100, max_bytes=16_000)
    for n in range(16):
        cache.put(f"k{n}", "v", 1000 - ENTRY_OVERHEAD)
    assert len(cache) == 16
    assert cache.bytes == 16_000
    assert cache.get("k0") == "v"  # now the most recently used
    cache.put("k16", "v", 1000 - ENTRY_OVERHEAD)
    assert cache.get("k1") is None  # the least recently used went
    assert cache.get("k0") == "v"
    assert cache.bytes <= 16_000


def test_entries_are_bounded_too_and_a_replaced_entry_is_not_counted_twice() -> None:
    cache: BoundedCache[int, int] = BoundedCache("t", max_entries=3, max_bytes=1 << 20)
    for n in range(5):
        cache.put(n, n, 0)
    assert len(cache) == 3
    cache.put(4, 4, 100)
    assert cache.bytes == 3 * ENTRY_OVERHEAD + 100


def test_an_entry_too_large_for_its_cache_is_not_kept_and_flushes_nothing() -> None:
    cache: BoundedCache[str, str] = BoundedCache("t", max_entries=100, max_bytes=16_000)
    cache.put("small", "v", 10)
    cache.put("large", "v", 1_000)  # more than a sixteenth of the cache
    assert cache.get("large") is None
    assert cache.get("small") == "v"


def test_a_cached_function_keeps_results_not_exceptions_and_reports_its_size() -> None:
    calls: list[str] = []

    @cached("test_doubling", 10, 1 << 20, size=len)
    def double(text: str) -> str:
        calls.append(text)
        if text == "bad":
            raise ValueError(text)
        return text * 2

    assert double("ab") == "abab"
    assert double("ab") == "abab"
    for _ in range(2):
        with pytest.raises(ValueError, match="bad"):
            double("bad")
    assert calls == ["ab", "bad", "bad"]
    assert cache_sizes()["test_doubling"] == ENTRY_OVERHEAD + len("ab") + len("abab")


CLIENT_WHERE_RULES = """\
version: 1
roles: [admin]
shapes:
  tasks:
    table: public.tasks
    where: "tenant_id = :tenant"
    client_where: [status]
    allow: [admin]
"""


def test_a_thousand_distinct_30_kb_queries_grow_the_caches_by_their_budgets_only() -> None:
    """Each query's where (6 KB) and three parameters (8 KB each) were kept whole, up to 10,000
    plans, 4,096 wheres and 16,384 encoded pairs: 1,500 such queries grew a replica by
    120 MB. Now the caches hold at most their byte budgets (28 MiB together here)."""
    rules = make_rules(CLIENT_WHERE_RULES)
    identity = make_identity(role="admin")
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(1_000):
            query = parse_shape_query([
                ("table", "tasks"), ("offset", "-1"),
                ("where", f"status = 'x{n}{'a' * 5800}' OR status IN ($1, $2, $3)"),
                ("params[1]", f"{n}" + "b" * 8000), ("params[2]", f"{n}" + "c" * 8000),
                ("params[3]", f"{n}" + "d" * 8000),
            ])  # fmt: skip
            _head(plan_upstream_request(query, identity, rules), "GET", {}, None)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert rules.plans.bytes <= rules.plans.max_bytes
    assert check_client_where.cache.bytes <= 4 * 1024 * 1024
    assert grown < 40 * 1024 * 1024, f"{grown / 1e6:.0f} MB"


async def test_metrics_report_the_bytes_each_cache_holds(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory()
    query = {"table": "tasks", "offset": "-1", "where": "status = $1", "params[1]": "open"}
    async with gateway.shape(query, token=make_token(role="admin")) as response:
        assert response.status == 502  # planned, then Electric is unreachable
    async with gateway.request("GET", "/metrics", token=None) as response:
        text = await response.text()
    sizes = {
        sample.labels["cache"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "shape_gateway_cache_bytes"
    }
    assert {"tokens", "identities", "plans", "client_wheres", "encoded_pairs"} <= set(sizes)
    assert all(sizes[name] > 0 for name in ("tokens", "identities", "plans", "client_wheres"))
