"""The client audit trail and security events on one real Redis stream, and /metrics."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, cast

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from gateway.audit.client_events import RedisSink
from gateway.auth.identity import Identity
from gateway.redis.client import connect_redis
from gateway.redis.keys import audit_seen, audit_stream, security_stream
from gateway.web.keys import RULES
from tests.factories import make_token
from tests.functional.conftest import Electric, World
from tests.functional.test_revocation_functional import ready, replica
from tests.gateway import Gateway, GatewayFactory

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
ALICE = make_token(sub="alice", tid="acme", role="member")


async def post(gateway: Gateway, body: Any, token: str = ALICE) -> tuple[int, Any]:
    async with gateway.request("POST", "/v1/audit-events", token=token, json=body) as response:
        return response.status, await response.json()


def stream(redis_url: str, prefix: str, name: str = "audit") -> list[dict[str, str]]:
    key = audit_stream(prefix) if name == "audit" else security_stream(prefix)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        entries = cast(list[tuple[str, dict[str, str]]], client.xrange(key))
        return [fields for _, fields in entries]
    finally:
        client.close()


EVENTS = [
    {"id": "e1", "action": "update", "table": "tasks", "recordId": "1",
     "changes": {"status": "done"}, "timestamp": "2026-11-23T10:00:00Z"},
    {"id": "e2", "action": "delete", "table": "tasks", "recordId": 3},
]  # fmt: skip


async def test_batches_are_stamped_server_side_and_deduplicated_across_replicas(
    gateway_factory: GatewayFactory, world: World, electric: Electric, redis_url: str,
    redis_prefix: str,
) -> None:  # fmt: skip
    a = await replica(gateway_factory, world, electric, redis_url, redis_prefix)
    b = await replica(gateway_factory, world, electric, redis_url, redis_prefix)
    status, body = await post(a, EVENTS)
    assert (status, body) == (200, {"accepted": ["e1", "e2"], "duplicates": [], "rejected": []})
    # The answer was lost; the client resends, to the other replica, with one new event.
    status, body = await post(b, [*EVENTS, {"id": "e3", "action": "create"}])
    assert body == {"accepted": ["e3"], "duplicates": ["e1", "e2"], "rejected": []}
    entries = [json.loads(f["event"]) for f in stream(redis_url, redis_prefix)
               if f["kind"] == "client"]  # fmt: skip
    assert [e["id"] for e in entries] == ["e1", "e2", "e3"]
    assert all((e["user"], e["tenant"], e["role"]) == ("alice", "acme", "member") for e in entries)
    assert entries[0]["changes"] == {"status": "done"}
    assert abs(entries[0]["received_at"] - time.time()) < 10
    # Another user's identical ids are theirs, not duplicates of alice's.
    _, body = await post(a, EVENTS, token=make_token(sub="bob", tid="acme", role="member"))
    assert body["accepted"] == ["e1", "e2"]


async def test_events_claiming_someone_else_are_rejected_as_attribution_mismatch(
    gateway_factory: GatewayFactory, world: World, electric: Electric, redis_url: str,
    redis_prefix: str,
) -> None:  # fmt: skip
    a = await replica(gateway_factory, world, electric, redis_url, redis_prefix)
    status, body = await post(a, [
        {"id": "x1", "action": "update", "userId": "bob"},
        {"id": "x2", "action": "update", "tenant": "globex"},
        {"id": "x3", "action": "update", "user": "alice", "tenantId": "acme"},
        {"id": "", "action": "update"},
        {"id": "x5"},
        {"id": "x6", "action": "update", "sneaky": True},
    ])  # fmt: skip
    assert status == 200
    assert body["accepted"] == ["x3"]
    assert [(r["id"], r["error"]) for r in body["rejected"]] == [
        ("x1", "attribution_mismatch"), ("x2", "attribution_mismatch"),
        ("", "invalid_parameter"), ("x5", "invalid_parameter"), ("x6", "invalid_parameter"),
    ]  # fmt: skip
    stored = [
        json.loads(f["event"]) for f in stream(redis_url, redis_prefix) if f["kind"] == "client"
    ]
    assert [(e["id"], e["user"], e["tenant"]) for e in stored] == [("x3", "alice", "acme")]


@pytest.mark.parametrize(
    "body", [{"id": "a"}, "text", [1, 2], [{"id": str(n), "action": "x"} for n in range(501)]]
)
async def test_malformed_batches_are_400(
    gateway_factory: GatewayFactory, world: World, electric: Electric, redis_url: str,
    redis_prefix: str, body: Any,
) -> None:  # fmt: skip
    a = await replica(gateway_factory, world, electric, redis_url, redis_prefix)
    status, answer = await post(a, body)
    assert status == 400
    assert answer["error"] == "invalid_parameter"


async def test_refusals_of_authenticated_callers_go_to_their_own_security_stream(
    gateway_factory: GatewayFactory, world: World, electric: Electric, redis_url: str,
    redis_prefix: str,
) -> None:  # fmt: skip
    a = await replica(gateway_factory, world, electric, redis_url, redis_prefix)
    await post(a, EVENTS)
    async with a.shape({"table": "tasks"}, token=None) as response:
        assert response.status == 401  # anonymous: counted and sampled, never streamed
    async with a.shape({"table": "salaries", "offset": "-1"}, token=ALICE) as response:
        assert response.status == 404
    deadline = time.monotonic() + 2
    while not (security := stream(redis_url, redis_prefix, "security")):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert [(s["kind"], s["reason"], s["user"], s["status"]) for s in security] == [
        ("security", "unknown_shape", "alice", "404"),
    ]
    assert {f["kind"] for f in stream(redis_url, redis_prefix)} == {"client"}
    async with a.request("GET", "/metrics", token=None) as response:
        metrics = await response.text()
    assert sample(metrics, "shape_gateway_unauthenticated_refusals_total",
                  reason="missing_token") == 1  # fmt: skip


async def test_audit_without_redis_deduplicates_in_process(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await gateway_factory(upstream=str(electric.url), rules=world.rules)
    _, body = await post(gateway, EVENTS)
    assert body["accepted"] == ["e1", "e2"], body
    assert (await post(gateway, EVENTS))[1]["duplicates"] == ["e1", "e2"]


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for metric in family.samples:
            if metric.name == name and all(metric.labels.get(k) == v for k, v in labels.items()):
                return float(metric.value)
    return 0.0


async def test_metrics_parse_and_move_with_requests(
    gateway_factory: GatewayFactory, world: World, electric: Electric, redis_url: str,
    redis_prefix: str,
) -> None:  # fmt: skip
    a = await replica(gateway_factory, world, electric, redis_url, redis_prefix)

    async def scrape() -> str:
        async with a.request("GET", "/metrics", token=None) as response:
            assert response.headers["Content-Type"].startswith("text/plain")
            text: str = await response.text()
            return text

    before = await scrape()
    for _ in range(3):
        async with a.shape({"table": "tasks", "offset": "-1"}, token=ALICE) as response:
            assert response.status == 200
            await response.read()
    async with a.shape({"table": "tasks", "offset": "-1", "x": "1"}, token=ALICE) as response:
        assert response.status == 400
    after = await scrape()
    ok = {"shape": "tasks", "decision": "allowed", "reason": "ok", "status": "200"}
    assert (
        sample(after, "shape_gateway_requests_total", **ok)
        - sample(before, "shape_gateway_requests_total", **ok)
        == 3
    )
    assert sample(after, "shape_gateway_requests_total", reason="unknown_parameter") == 1
    assert sample(after, "shape_gateway_response_bytes_count") >= 3
    assert sample(after, "shape_gateway_rules_info", digest=a.app[RULES].rules.digest) == 1
    assert "tenant" not in after.split("shape_gateway_requests_total{", 1)[1].split("}", 1)[0]


async def test_a_batch_arriving_in_pieces_is_read_whole(
    gateway_factory: GatewayFactory, world: World, electric: Electric, redis_url: str,
    redis_prefix: str,
) -> None:  # fmt: skip
    a = await replica(gateway_factory, world, electric, redis_url, redis_prefix)
    batch = [
        {"id": f"big-{n}", "action": "update", "changes": {"note": "x" * 1000}} for n in range(300)
    ]  # fmt: skip  (300 KB: well under what a request may store)
    body = json.dumps(batch).encode()
    assert a.url.host is not None
    reader, writer = await asyncio.open_connection(a.url.host, a.url.port)
    writer.write(
        f"POST /v1/audit-events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ALICE}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body[:1000]
    )
    await writer.drain()
    await asyncio.sleep(0.2)  # the rest comes later, as over a slow network
    writer.write(body[1000:])
    await writer.drain()
    status_line = await reader.readline()
    await reader.readuntil(b"\r\n\r\n")
    answer = json.loads(await reader.read(100_000))
    writer.close()
    assert status_line.split()[1] == b"200"
    assert len(answer["accepted"]) == 300


async def test_event_ids_of_different_users_never_collide_through_a_separator(
    gateway_factory: GatewayFactory, world: World, electric: Electric, redis_url: str,
    redis_prefix: str,
) -> None:  # fmt: skip
    a = await replica(gateway_factory, world, electric, redis_url, redis_prefix)
    bob = make_token(sub="bob", tid="acme", role="member")
    bob_1 = make_token(sub="bob:1", tid="acme", role="member")
    assert (await post(a, [{"id": "1:x", "action": "update"}], token=bob))[1]["accepted"] == ["1:x"]
    assert (await post(a, [{"id": "x", "action": "update"}], token=bob_1))[1]["accepted"] == ["x"]


def memory_usage(redis_url: str, key: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return int(cast(int, client.memory_usage(key, samples=0)) or 0)
    finally:
        client.close()


async def settled(redis_url: str, prefix: str, count: int) -> list[dict[str, str]]:
    """The security stream once it holds `count` events (it is written in the background)."""
    deadline = time.monotonic() + 5
    while len(events := stream(redis_url, prefix, "security")) < count:
        assert time.monotonic() < deadline, f"{len(events)} of {count} security events"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # and no more come
    return stream(redis_url, prefix, "security")


async def test_refusals_with_a_30_kb_path_store_about_2_kib_each_saying_the_path_was_cut(
    gateway_factory: GatewayFactory, world: World, electric: Electric, redis_url: str,
    redis_prefix: str,
) -> None:  # fmt: skip
    """Each used to store its whole path: 300 of them added 9.9 MB to Redis."""
    a = await replica(gateway_factory, world, electric, redis_url, redis_prefix)
    path = "/v1/shape/" + "a" * 30_000

    async def refused(n: int) -> None:
        async with a.request("GET", f"{path}{n}", token=ALICE) as response:
            assert response.status == 404

    for start in range(0, 300, 50):
        await asyncio.gather(*(refused(n) for n in range(start, start + 50)))
    events = await settled(redis_url, redis_prefix, 300)
    assert len(events) == 300
    assert all(e["path_truncated"] == "true" and 30_011 <= int(e["path_bytes"]) <= 30_013
               for e in events)  # fmt: skip
    assert max(sum(len(k) + len(v) for k, v in e.items()) for e in events) <= 2048
    assert memory_usage(redis_url, security_stream(redis_prefix)) <= 300 * 2048


async def test_a_flood_of_429s_from_one_user_is_one_security_event_while_it_lasts(
    gateway_factory: GatewayFactory, world: World, electric: Electric, redis_url: str,
    redis_prefix: str,
) -> None:  # fmt: skip
    limits = "limits:\n  default: {requests_per_minute: 5}\n"
    gateway = await gateway_factory(
        upstream=str(electric.url), rules=world.rules + limits, redis_url=redis_url,
        redis_prefix=redis_prefix,
    )  # fmt: skip
    await ready(gateway)
    statuses = []
    for _ in range(100):
        async with gateway.shape({"table": "salaries", "offset": "-1"}, token=ALICE) as response:
            statuses.append(response.status)
    assert statuses.count(404) == 5
    assert statuses.count(429) == 95
    events = await settled(redis_url, redis_prefix, 6)
    assert [(e["reason"], e.get("folded")) for e in events] == [
        *[("unknown_shape", None)] * 5, ("rate_limited", "0"),
    ]  # fmt: skip


def batch(prefix: str, count: int, note_bytes: int) -> list[dict[str, Any]]:
    return [{"id": f"{prefix}-{n}", "action": "update", "changes": {"note": "x" * note_bytes}}
            for n in range(count)]  # fmt: skip


async def test_what_a_batch_may_store_is_bounded_on_what_is_stored_not_what_was_received(
    gateway_factory: GatewayFactory, world: World, electric: Electric, redis_url: str,
    redis_prefix: str,
) -> None:  # fmt: skip
    """One request used to store up to 2 MiB (500 events of up to 16 KiB, as received)."""
    a = await replica(gateway_factory, world, electric, redis_url, redis_prefix)
    # 7.9 KB as sent, over 8 KiB once stamped with a 256-character user id.
    long_user = make_token(sub="u" * 256, tid="acme", role="member")
    status, body = await post(a, batch("stamped", 1, 7_900), token=long_user)
    assert status == 200
    assert body["rejected"][0]["message"].startswith(
        "an event must be at most 8192 bytes as stored"
    )
    # 500 events of 1.5 KB: 780 KB sent, more than 512 KiB to store: refused whole.
    status, body = await post(a, batch("many", 500, 1_500))
    assert (status, body["error"]) == (400, "invalid_parameter")
    assert "send it in smaller batches" in body["message"]
    assert stream(redis_url, redis_prefix) == []
    # The largest batches that pass store about what they are charged.
    status, body = await post(a, batch("fits", 200, 1_500))
    assert (status, len(body["accepted"])) == (200, 200)
    stored = memory_usage(redis_url, audit_stream(redis_prefix)) + memory_usage(
        redis_url, audit_seen(redis_prefix)
    )
    assert stored <= 512 * 1024


async def test_a_users_audit_budget_is_shared_by_replicas_and_spent_batches_store_nothing(
    gateway_factory: GatewayFactory, world: World, electric: Electric, redis_url: str,
    redis_prefix: str,
) -> None:  # fmt: skip
    per_minute = 512 * 1024
    a = await replica(gateway_factory, world, electric, redis_url, redis_prefix,
                      audit_bytes_per_minute=per_minute)  # fmt: skip
    b = await replica(gateway_factory, world, electric, redis_url, redis_prefix,
                      audit_bytes_per_minute=per_minute)  # fmt: skip
    first = batch("first", 200, 1_500)  # about 450 KiB of the 512
    assert (await post(a, first))[0] == 200
    async with b.request("POST", "/v1/audit-events", token=ALICE,
                         json=batch("second", 200, 1_500)) as response:  # fmt: skip
        assert response.status == 429
        assert (await response.json())["error"] == "rate_limited"
        assert 40 <= int(response.headers["Retry-After"]) <= 60
    assert len(stream(redis_url, redis_prefix)) == 200  # nothing of the second
    status, body = await post(b, first)  # a resend after a lost answer costs nothing
    assert (status, len(body["duplicates"])) == (200, 200)
    bob = make_token(sub="bob", tid="acme", role="member")
    assert (await post(b, batch("bob", 200, 1_500), token=bob))[0] == 200  # bob's own budget


async def test_without_redis_the_audit_budget_is_kept_in_process(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await gateway_factory(
        upstream=str(electric.url), rules=world.rules, audit_bytes_per_minute=512 * 1024
    )
    assert (await post(gateway, batch("first", 200, 1_500)))[0] == 200
    status, body = await post(gateway, batch("second", 200, 1_500))
    assert (status, body["error"]) == (429, "rate_limited")


async def test_the_deduplication_index_holds_as_many_ids_as_the_stream(
    redis_url: str, redis_prefix: str
) -> None:
    """Bounded like the stream (here 5; by default the stream's byte budget over the largest
    event); an id that left it is new again."""
    client = connect_redis(redis_url, "audit", replica="test", connections=1)
    sink = RedisSink(client, redis_prefix, 1 << 20, maxlen=5)
    alice = Identity(user="alice", tenant="acme", role="member")
    try:
        entries = [(f"e{n}", json.dumps({"id": f"e{n}"})) for n in range(8)]
        assert await sink.append_client(alice, entries) == [True] * 8
        index = redis.Redis.from_url(redis_url)
        try:
            assert index.zcard(audit_seen(redis_prefix)) == 5
        finally:
            index.close()
        assert await sink.append_client(alice, entries[:1] + entries[-1:]) == [True, False]
    finally:
        await sink.close()
