"""A Redis that comes back with fewer entries than the gateways applied (a promoted replica that
missed the last ones, a restart from an older snapshot) gets them back from the gateways, and
no replica applies anything twice, nor puts back an event a publisher published again since.
Simulated with redis-server processes of the test's own: the gateways' Redis is replaced, on
its address, by one loaded from a snapshot holding only the first entry (and the epoch key, as
a replica has it), with or without a newer entry a publisher wrote to it first.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest

from gateway.redis.keys import revocation_epoch, revocation_event, revocation_stream
from tests.functional.test_redis_failover import (
    Entries,
    applied_total,
    enforced_everywhere,
    post_revocation,
)
from tests.functional.test_revocation_functional import ready
from tests.gateway import Gateway, GatewayFactory
from tests.redis_servers import RedisProcess, RedisServers

pytestmark = [pytest.mark.redis]
PREFIX = "gw-failover"  # the prefix the helpers read
STREAM = revocation_stream(PREFIX)


async def replicas(factory: GatewayFactory, redis: RedisProcess, count: int) -> list[Gateway]:
    started = []
    for _ in range(count):
        gateway = await factory(redis_url=redis.url, redis_prefix=PREFIX)
        await ready(gateway)
        started.append(gateway)
    return started


def entries(redis: RedisProcess) -> Entries:
    client = redis.client()
    try:
        return cast(Entries, client.xrange(STREAM))
    finally:
        client.close()


async def until_entries(redis: RedisProcess, count: int, within: float = 5.0) -> Entries:
    deadline = time.monotonic() + within
    while len(found := entries(redis)) < count:
        assert time.monotonic() < deadline, f"{len(found)} entries, wanted {count}"
        await asyncio.sleep(0.05)
    return found


async def three_revocations(gateways: list[Gateway], redis: RedisProcess) -> Entries:
    for user in ("u1", "u2", "u3"):
        assert (await post_revocation(gateways[0], user))[0] == 202
    await enforced_everywhere(gateways, ["u1", "u2", "u3"], within=2)
    return await until_entries(redis, 3)


def snapshot_holding(
    servers: RedisServers, original: RedisProcess, first: tuple[str, dict[str, str]],
    newer: dict[str, str] | None,
) -> RedisProcess:  # fmt: skip
    """A server holding the original's epoch, its first entry, and `newer` written after."""
    source = original.client()
    epoch = source.get(revocation_epoch(PREFIX))
    source.close()
    snapshot = servers.single("snapshot")
    client = snapshot.client()
    try:
        client.set(revocation_epoch(PREFIX), cast(Any, epoch))
        client.xadd(STREAM, cast(Any, first[1]), id=first[0])
        if newer is not None:
            client.xadd(STREAM, cast(Any, newer))
    finally:
        client.close()
    return snapshot


async def test_a_redis_behind_the_gateways_gets_the_missing_entries_back_with_their_ids(
    gateway_factory: GatewayFactory, redis_servers: RedisServers
) -> None:
    redis = redis_servers.single()
    a, b = await replicas(gateway_factory, redis, 2)
    original = await three_revocations([a, b], redis)
    snapshot = snapshot_holding(redis_servers, redis, original[0], newer=None)
    redis = redis_servers.replace_with_snapshot(redis, snapshot)
    restored = await until_entries(redis, 3)
    assert [i for i, _ in restored] == [i for i, _ in original]  # the very same ids
    late = (await replicas(gateway_factory, redis, 1))[0]
    await enforced_everywhere([a, b, late], ["u1", "u2", "u3"], within=2)
    assert [await applied_total(g) for g in (a, b, late)] == [3, 3, 3]


async def test_entries_missing_below_a_newer_entry_are_copied_once(
    gateway_factory: GatewayFactory, redis_servers: RedisServers
) -> None:
    redis = redis_servers.single()
    a, b = await replicas(gateway_factory, redis, 2)
    original = await three_revocations([a, b], redis)
    # A publisher reached the new Redis first: u4's id is above everything the gateways
    # applied, so u2 and u3 can only come back as copies.
    u4 = {"type": "session.revoked", "user": "u4"}
    snapshot = snapshot_holding(redis_servers, redis, original[0], newer=u4)
    redis = redis_servers.replace_with_snapshot(redis, snapshot)
    await until_entries(redis, 4)  # u1, u4 and the copies of u2 and u3
    await enforced_everywhere([a, b], ["u4"], within=2)
    await asyncio.sleep(1.0)  # both gateways reconnected and checked within this: a second
    restored = entries(redis)  # copy would show by now
    copies = sorted(fields["origin"] for _, fields in restored if "origin" in fields)
    assert copies == [original[1][0], original[2][0]]  # each copied once, by one gateway
    late = (await replicas(gateway_factory, redis, 1))[0]
    await enforced_everywhere([a, b, late], ["u1", "u2", "u3", "u4"], within=2)
    assert [await applied_total(g) for g in (a, b, late)] == [4, 4, 4]


async def test_an_event_published_again_on_the_new_redis_is_not_put_back_a_second_time(
    gateway_factory: GatewayFactory, redis_servers: RedisServers
) -> None:
    redis = redis_servers.single()
    a, b = await replicas(gateway_factory, redis, 2)
    original = await three_revocations([a, b], redis)
    # u3's publisher, told its outcome was unknown, published it again (same event_id) and
    # reached the new Redis before the gateways did: the stream has it under a new id.
    again = dict(original[2][1])
    snapshot = snapshot_holding(redis_servers, redis, original[0], newer=again)
    client = snapshot.client()
    try:
        [(again_id, _)] = cast(Entries, client.xrevrange(STREAM, count=1))
        client.set(revocation_event(PREFIX, again["event_id"]), again_id)
    finally:
        client.close()
    redis = redis_servers.replace_with_snapshot(redis, snapshot)
    await until_entries(redis, 3)  # u1, u3 again, and a copy of u2
    await asyncio.sleep(1.0)  # both gateways reconnected and restored within this
    restored = entries(redis)
    assert [fields["user"] for _, fields in restored] == ["u1", "u3", "u2"]
    assert [fields.get("origin") for _, fields in restored] == [None, None, original[1][0]]
    late = (await replicas(gateway_factory, redis, 1))[0]
    await enforced_everywhere([a, b, late], ["u1", "u2", "u3"], within=2)
    assert [await applied_total(g) for g in (a, b, late)] == [3, 3, 3]
