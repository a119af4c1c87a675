"""A Sentinel master that hangs (SIGSTOP: a long pause, a partition) while Sentinel fails over
to its replica, then comes back (SIGCONT) still calling itself master until Sentinel demotes
it, ten seconds later. Real `redis-server` processes: a master, its replica, three sentinels
(`down-after-milliseconds 1000`: Sentinel names the replica master about 3 s after the hang).

What must hold: publishers on every side (the admin API of each gateway, the CLI) are
acknowledged only on the master the sentinels name, so every acknowledged event is enforced on
every gateway within a second of its acknowledgement, before and after the resumed master is
demoted; and a failover faster than the stale limit costs no readiness and no refusal.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import cast

import pytest

from gateway.redis.keys import revocation_stream
from tests.functional.conftest import ELECTRIC_SECRET, Electric, World
from tests.functional.enforcement import (
    PROMISE,
    AdminPoster,
    Applied,
    CliPoster,
    lateness,
    refused_everywhere,
    summary,
    until,
)
from tests.functional.test_revocation_functional import SNAPSHOT, ready
from tests.gateway import Gateway, GatewayFactory
from tests.redis_servers import RedisServers, Replicated

pytestmark = [pytest.mark.redis]
PREFIX = "gw-hung"
Entries = list[tuple[str, dict[str, str]]]


async def gateways_following(
    factory: GatewayFactory, group: Replicated, count: int, **overrides: object
) -> list[Gateway]:
    started = []
    for _ in range(count):
        gateway = await factory(redis_url=group.url, redis_prefix=PREFIX, **overrides)
        await ready(gateway)
        started.append(gateway)
    return started


def users_on(group: Replicated, port: int) -> set[str]:
    """The users revoked in the revocation stream of the server at `port`."""
    server = next(s for s in (group.master, group.replica) if s.port == port)
    client = server.client()
    try:
        entries = cast(Entries, client.xrange(revocation_stream(PREFIX)))
    finally:
        client.close()
    return {fields["user"] for _, fields in entries if "user" in fields}


def promoted(group: Replicated) -> Callable[[], bool]:
    return lambda: group.master_port() == group.replica.port


def role_of(group: Replicated) -> str:
    client = group.master.client()
    try:
        return str(client.role()[0])
    finally:
        client.close()


async def test_a_hung_master_that_resumes_leaves_every_acknowledgement_enforced_within_a_second(
    gateway_factory: GatewayFactory, redis_servers: RedisServers
) -> None:  # fmt: skip
    group = redis_servers.replicated()
    gateways = await gateways_following(gateway_factory, group, 3)
    applied = [Applied(g) for g in gateways]
    admin = AdminPoster(gateways)
    cli = CliPoster({"REDIS_URL": group.url, "GATEWAY_REDIS_PREFIX": PREFIX})
    async with asyncio.TaskGroup() as tasks:
        posting = [tasks.create_task(admin.run()), tasks.create_task(cli.run())]
        await admin.acknowledged_more(10, within=10)
        group.master.pause()
        paused_at = time.monotonic()
        promoted_in = await until(promoted(group), "Sentinel promotes", 10)
        await asyncio.sleep(max(4.0 - (time.monotonic() - paused_at), 0))
        group.master.resume()  # it still calls itself master, with a client backlog to run
        resumed_at = time.monotonic()
        await admin.acknowledged_more(20, within=15)
        await until(lambda: max(cli.acknowledged.values(), default=0) > resumed_at,
                    "a CLI publish after the resume", 15)  # fmt: skip
        assert role_of(group) == "master"  # the split-brain window is still open
        for task in posting:
            task.cancel()
    acknowledged = {**admin.acknowledged, **cli.acknowledged}
    await asyncio.sleep(PROMISE)  # anything later than this is late anyway
    lags, missing = lateness(acknowledged, applied)
    during = sorted(e for e, at in acknowledged.items() if paused_at < at)
    print(
        f"\nhung master: Sentinel promoted the replica {promoted_in:.1f} s after the pause; "
        f"{len(admin.acknowledged)} admin-API and {len(cli.acknowledged)} CLI publishes "
        f"acknowledged ({len(during)} after the pause), the others answered "
        f"{dict(admin.answers)}, CLI exits {dict(cli.exits)}; acknowledgement to enforcement: "
        f"{summary(lags)}"
    )
    assert not missing
    assert max(lags) <= PROMISE
    assert len(during) >= 20
    # Nothing acknowledged lives only on the deposed master: the promoted one has it all.
    assert set(acknowledged) <= users_on(group, group.replica.port)
    late = await gateways_following(gateway_factory, group, 1)
    await refused_everywhere([*gateways, *late], sorted(acknowledged), within=5)


async def test_a_master_hung_ten_seconds_with_a_quick_failover_costs_no_refusal(
    gateway_factory: GatewayFactory, world: World, electric: Electric,
    redis_servers: RedisServers,
) -> None:  # fmt: skip
    group = redis_servers.replicated()
    gateways = await gateways_following(
        gateway_factory, group, 3, upstream=str(electric.url), rules=world.rules,
        electric_secret=ELECTRIC_SECRET,
    )  # fmt: skip
    statuses: Counter[tuple[str, int]] = Counter()
    slowest = [0.0]

    async def probe(gateway: Gateway) -> None:
        while True:
            async with gateway.request("GET", "/readyz", token=None) as response:
                statuses["readyz", response.status] += 1
            started = time.monotonic()
            async with gateway.shape(SNAPSHOT) as response:
                await response.read()
                statuses["shape", response.status] += 1
            slowest[0] = max(slowest[0], time.monotonic() - started)
            await asyncio.sleep(0.05)

    async with asyncio.TaskGroup() as tasks:
        probes = [tasks.create_task(probe(g)) for g in gateways]
        await asyncio.sleep(1.0)
        group.master.pause()
        paused_at = time.monotonic()
        promoted_in = await until(promoted(group), "Sentinel promotes", 10)
        await asyncio.sleep(max(10.0 - (time.monotonic() - paused_at), 0))
        group.master.resume()
        await asyncio.sleep(2.0)
        for task in probes:
            task.cancel()
    print(
        f"\nmaster hung 10 s, Sentinel promoted the replica {promoted_in:.1f} s after the "
        f"pause: answers {dict(statuses)}; slowest shape request {slowest[0]:.2f} s"
    )
    assert set(statuses) == {("readyz", 200), ("shape", 200)}
