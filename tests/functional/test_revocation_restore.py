"""A Redis that comes back with fewer entries than the gateways applied (a promoted replica that
missed the last ones, a snapshot a few writes old) gets them back from the gateways, and no
replica applies anything twice. Simulated on a redis-server of the test's own by rewriting the
stream as such a Redis would hold it (its epoch key kept, as a replica would have it).
"""

from __future__ import annotations

import asyncio
import time
from typing import cast

import pytest

from gateway.redis_keys import revocation_stream
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


async def test_a_redis_behind_the_gateways_gets_the_missing_entries_back_with_their_ids(
    gateway_factory: GatewayFactory, redis_servers: RedisServers
) -> None:
    redis = redis_servers.single()
    a, b = await replicas(gateway_factory, redis, 2)
    for user in ("u1", "u2", "u3"):
        assert (await post_revocation(a, user))[0] == 202
    await enforced_everywhere([a, b], ["u1", "u2", "u3"], within=2)
    original = await until_entries(redis, 3)
    client = redis.client()
    try:  # now it holds only the first entry, and still its epoch
        with client.pipeline(transaction=True) as pipe:
            pipe.delete(STREAM)
            pipe.xadd(STREAM, original[0][1], id=original[0][0])  # type: ignore[arg-type]
            pipe.execute()
    finally:
        client.close()
    restored = await until_entries(redis, 3)
    assert [i for i, _ in restored] == [i for i, _ in original]  # the very same ids
    late = (await replicas(gateway_factory, redis, 1))[0]
    await enforced_everywhere([a, b, late], ["u1", "u2", "u3"], within=2)
    assert [await applied_total(g) for g in (a, b, late)] == [3, 3, 3]


async def test_after_a_lost_connection_entries_missing_below_a_newer_top_are_copied_once(
    gateway_factory: GatewayFactory, redis_servers: RedisServers
) -> None:
    redis = redis_servers.single()
    a, b = await replicas(gateway_factory, redis, 2)
    for user in ("u1", "u2", "u3"):
        assert (await post_revocation(a, user))[0] == 202
    await enforced_everywhere([a, b], ["u1", "u2", "u3"], within=2)
    original = await until_entries(redis, 3)
    client = redis.client()
    try:
        # What a replica promoted without u2 and u3 holds once a publisher wrote u4 to it
        # first: u4's id is above everything the gateways applied, so only a full check finds
        # the gap. Then every connection drops, as in a failover.
        with client.pipeline(transaction=True) as pipe:
            pipe.delete(STREAM)
            pipe.xadd(STREAM, original[0][1], id=original[0][0])  # type: ignore[arg-type]
            pipe.xadd(STREAM, {"type": "session.revoked", "user": "u4"})
            pipe.execute()
        await enforced_everywhere([a, b], ["u4"], within=2)
        client.client_kill_filter(_type="normal")
    finally:
        client.close()
    await until_entries(redis, 4)  # u1, u4 and the copies of u2 and u3
    await asyncio.sleep(1.5)  # both gateways reconnect and check within this; a second copy
    restored = entries(redis)  # would show by now
    copies = sorted(fields["origin"] for _, fields in restored if "origin" in fields)
    assert copies == [original[1][0], original[2][0]]  # each copied once, by one gateway
    late = (await replicas(gateway_factory, redis, 1))[0]
    await enforced_everywhere([a, b, late], ["u1", "u2", "u3", "u4"], within=2)
    assert [await applied_total(g) for g in (a, b, late)] == [4, 4, 4]
