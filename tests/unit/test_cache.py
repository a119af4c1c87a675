"""Hot-path caches bounded in bytes as well as entries, and what large queries cost them."""

from __future__ import annotations

import gc
import tracemalloc

from gateway.auth.keys import KeyRing, StaticKeys
from gateway.auth.tokens import TokenPolicy, TokenVerifier
from gateway.cache import ENTRY_OVERHEAD, BoundedCache, text_size
from gateway.decisions import Caller, Decisions
from gateway.shape.params import parse_shape_query
from gateway.upstream.client import _head
from tests.factories import make_identity, make_rules


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


def test_text_size_counts_the_text_in_nested_keys_and_mappings() -> None:
    assert text_size(("ab", (b"cd", 3), frozenset({"e"}), {"f": ["gh"]}, None)) == 8


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


def test_a_thousand_distinct_30_kb_queries_grow_the_cache_by_its_budget_only() -> None:
    """Each query's where (6 KB) and three parameters (8 KB each) were kept whole, up to 10,000
    plans, 4,096 wheres and 16,384 encoded pairs: 1,500 such queries grew a replica by
    120 MB. Now the one decisions cache holds at most its byte budget (32 MiB)."""
    rules = make_rules(CLIENT_WHERE_RULES)
    identity = make_identity(role="admin")
    decisions = Decisions(TokenVerifier(KeyRing(StaticKeys(())), TokenPolicy()))
    caller = Caller(b"digest", None)
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
            _head(decisions.plan(query, caller, identity, rules), "GET", {}, None)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert decisions.cache.bytes <= decisions.cache.max_bytes == 32 * 1024 * 1024
    assert grown < 40 * 1024 * 1024, f"{grown / 1e6:.0f} MB"
