"""Client audit events: stamped with the token's identity and never the client's, rejected one
by one (bad id, another user or tenant, unknown fields), de-duplicated within a batch and
across requests (across replicas too, in real Redis), and refused whole with 429 when the
user's byte budget cannot pay, storing nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from gateway.audit.client_events import (
    MAX_BATCH_BYTES,
    MAX_EVENT_BYTES,
    MAX_EVENTS,
    LogSink,
    RedisSink,
    parse_batch,
    record_batch,
    stored_bytes,
)
from gateway.auth.identity import Identity
from gateway.errors import Code, Refusal
from gateway.redis.client import connect_redis

ALICE = Identity(user="alice", tenant="acme", role="member")
REDIS_URL = "redis://127.0.0.1:6379/0"


def event(event_id: str, **fields: object) -> dict[str, Any]:
    return {"id": event_id, "action": "update", **fields}


async def test_an_event_is_stored_with_the_servers_attribution_over_the_clients() -> None:
    sink = LogSink(bytes_per_minute=1_000_000)
    with capture_logs() as logs:
        outcome = await record_batch(
            sink, ALICE, [event("e1", userId="alice", tenantId="acme", table="tasks")], "req-1"
        )
    assert outcome.as_json() == {"accepted": ["e1"], "duplicates": [], "rejected": []}
    (stored,) = [line["audit_event"] for line in logs]
    assert {k: stored[k] for k in ("user", "tenant", "role", "request_id", "table")} == {
        "user": "alice", "tenant": "acme", "role": "member", "request_id": "req-1",
        "table": "tasks",
    }  # fmt: skip
    assert "userId" not in stored
    assert "tenantId" not in stored
    assert isinstance(stored["received_at"], float)


@pytest.mark.parametrize(
    ("bad", "code", "message"),
    [
        ({"id": ""}, Code.INVALID_PARAMETER, "`id` must be a string of 1-128 characters"),
        ({"id": 7}, Code.INVALID_PARAMETER, "`id` must be a string of 1-128 characters"),
        (event("x", userId="bob"), Code.ATTRIBUTION_MISMATCH,
         "`userId` names another user; drop it"),
        (event("x", tenant="globex"), Code.ATTRIBUTION_MISMATCH,
         "`tenant` names another tenant; drop it"),
        (event("x", role="admin"), Code.INVALID_PARAMETER, "unknown field `role`"),
        ({"id": "x"}, Code.INVALID_PARAMETER, "`action` must be a non-empty string"),
        (event("x", table=1), Code.INVALID_PARAMETER, "`table` must be a string"),
        (event("x", changes=[1]), Code.INVALID_PARAMETER, "`changes` must be an object"),
    ],
)  # fmt: skip
async def test_a_bad_event_is_rejected_alone_and_the_rest_stored(
    bad: dict[str, object], code: Code, message: str
) -> None:
    outcome = await record_batch(LogSink(1_000_000), ALICE, [bad, event("good")], "r")
    assert outcome.accepted == ["good"]
    assert [(r["error"], r["message"]) for r in outcome.rejected] == [(code.value, message)]


async def test_an_event_too_large_as_stored_is_rejected() -> None:
    outcome = await record_batch(
        LogSink(10_000_000), ALICE, [event("big", changes={"x": "y" * MAX_EVENT_BYTES})], "r"
    )
    assert outcome.accepted == []
    assert outcome.rejected[0]["message"].startswith(f"an event must be at most {MAX_EVENT_BYTES}")


async def test_a_batch_too_large_as_stored_is_refused_whole() -> None:
    events: list[Mapping[str, Any]] = [event(f"e{n}", changes={"x": "y" * 7000}) for n in range(80)]
    with pytest.raises(Refusal) as caught:
        await record_batch(LogSink(100_000_000), ALICE, events, "r")
    assert caught.value.code is Code.INVALID_PARAMETER
    assert f"more than the {MAX_BATCH_BYTES}" in caught.value.message


async def test_duplicates_within_a_batch_and_across_requests_are_stored_once() -> None:
    sink = LogSink(1_000_000)
    first = await record_batch(sink, ALICE, [event("a"), event("a"), event("b")], "r1")
    again = await record_batch(sink, ALICE, [event("b"), event("c")], "r2")
    assert (first.accepted, first.duplicates) == (["a", "b"], ["a"])
    assert (again.accepted, again.duplicates) == (["c"], ["b"])
    other = Identity(user="bob", tenant="acme", role="member")
    assert (await record_batch(sink, other, [event("a")], "r3")).accepted == ["a"]  # per user


async def test_a_batch_the_budget_cannot_pay_for_is_refused_with_retry_after_storing_nothing() -> (
    None
):
    sink = LogSink(bytes_per_minute=2048)
    await record_batch(sink, ALICE, [event("a")], "r")
    with capture_logs() as logs, pytest.raises(Refusal) as caught:
        await record_batch(sink, ALICE, [event(f"b{n}") for n in range(10)], "r")
    assert caught.value.code is Code.RATE_LIMITED
    assert caught.value.retry_after is not None
    assert caught.value.retry_after >= 1
    assert logs == []


async def test_a_resent_batch_costs_nothing_of_the_budget() -> None:
    sink = LogSink(bytes_per_minute=2048)
    batch: list[Mapping[str, Any]] = [
        event("a"),
        event("b"),
        event("c"),
    ]  # about two thirds of the budget
    assert (await record_batch(sink, ALICE, batch, "r1")).accepted == ["a", "b", "c"]
    resent = await record_batch(sink, ALICE, batch, "r2")  # the answer was lost: sent again
    assert resent.duplicates == ["a", "b", "c"]


def test_a_body_must_be_an_array_of_at_most_max_events_objects() -> None:
    assert parse_batch([{"id": "a"}]) == [{"id": "a"}]
    document: object
    for document in ({"id": "a"}, ["a"], [{}] * (MAX_EVENTS + 1)):
        with pytest.raises(Refusal):
            parse_batch(document)


def test_storage_cost_counts_a_quarter_more_and_a_fixed_overhead() -> None:
    assert stored_bytes([("a", "x" * 400), ("b", "x" * 400)]) == 2 * (500 + 256)


Sinks = tuple[RedisSink, RedisSink, Redis]


async def entries(reader: Redis, stream: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    return cast(list[tuple[bytes, dict[bytes, bytes]]], await reader.xrange(stream))


@pytest.fixture
async def sinks() -> AsyncIterator[Sinks]:
    """Two replicas' sinks on one real Redis, under a prefix of this test's own, and a plain
    client to read what they stored."""
    prefix = f"test-client-events-{uuid.uuid4().hex}"
    opened = [
        RedisSink(connect_redis(REDIS_URL, "audit", replica=f"r{n}", connections=1), prefix, 4096)
        for n in range(2)
    ]
    reader = Redis.from_url(REDIS_URL)
    yield opened[0], opened[1], reader
    keys = [key async for key in reader.scan_iter(f"*{prefix}*")]
    if keys:
        await reader.delete(*keys)
    await reader.aclose()
    for sink in opened:
        await sink.close()


@pytest.mark.redis
async def test_in_redis_duplicates_are_stored_once_across_replicas_and_the_budget_is_shared(
    sinks: Sinks,
) -> None:
    one, two, reader = sinks
    first = await record_batch(one, ALICE, [event("a"), event("a"), event("b")], "r1")
    again = await record_batch(two, ALICE, [event("b"), event("c")], "r2")
    assert (first.accepted, again.accepted, again.duplicates) == (["a", "b"], ["c"], ["b"])
    stored = await entries(reader, one.stream)
    assert [json.loads(fields[b"event"])["id"] for _, fields in stored] == ["a", "b", "c"]
    with pytest.raises(Refusal) as caught:  # the budget the first replica spent is spent here
        await record_batch(two, ALICE, [event(f"d{n}") for n in range(10)], "r3")
    assert caught.value.code is Code.RATE_LIMITED
    assert await reader.xlen(one.stream) == 3  # nothing of the refused batch


@pytest.mark.redis
async def test_in_redis_security_events_go_to_their_own_stream(sinks: Sinks) -> None:
    one, _, reader = sinks
    await one.append_security({"code": "shape_not_allowed", "user": "alice"})
    (entry,) = await entries(reader, one.security_stream)
    assert entry[1] == {b"kind": b"security", b"code": b"shape_not_allowed", b"user": b"alice"}
    assert await reader.xlen(one.stream) == 0
