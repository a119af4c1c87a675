"""The client audit trail and security events on one real Redis stream, and /metrics."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, cast

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from gateway.redis_keys import audit_stream, security_stream
from gateway.web.keys import RULES
from tests.factories import make_token
from tests.functional.conftest import Electric, World
from tests.functional.test_revocation_functional import replica
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
    batch = [{"id": f"big-{n}", "action": "update", "changes": {"note": "x" * 1000}}
             for n in range(500)]  # fmt: skip
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
    assert len(answer["accepted"]) == 500


async def test_event_ids_of_different_users_never_collide_through_a_separator(
    gateway_factory: GatewayFactory, world: World, electric: Electric, redis_url: str,
    redis_prefix: str,
) -> None:  # fmt: skip
    a = await replica(gateway_factory, world, electric, redis_url, redis_prefix)
    bob = make_token(sub="bob", tid="acme", role="member")
    bob_1 = make_token(sub="bob:1", tid="acme", role="member")
    assert (await post(a, [{"id": "1:x", "action": "update"}], token=bob))[1]["accepted"] == ["1:x"]
    assert (await post(a, [{"id": "x", "action": "update"}], token=bob_1))[1]["accepted"] == ["x"]
