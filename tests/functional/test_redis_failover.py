"""Failover for real: a master, its replica and three sentinels (`redis-server` processes of
the test's own), gateway replicas following the master through Sentinel and holding
long-polls, and revocations posted continuously while the master is killed.

What must hold afterwards: every acknowledged (202) revocation is enforced by every replica,
including the ones the promoted replica never received (the gateways put them back) and on a
replica started after the failover; no event is applied twice; and the time each replica spent
not ready is reported. A revocation is acknowledged only once the replica has it (`WAIT`) while
one is connected, which the second test shows from the other side: a replica that cannot
confirm makes the publish a 503.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass, field
from typing import cast

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.redis.keys import revocation_stream
from tests.factories import make_token
from tests.functional.conftest import ElectricFactory, World
from tests.functional.enforcement import until
from tests.functional.test_revocation_functional import ready, replica
from tests.functional.test_shape_functional import fetch, sync_to_live
from tests.gateway import ADMIN_TOKEN, Gateway, GatewayFactory
from tests.redis_servers import RedisServers, Replicated, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
PREFIX = "gw-failover"
Entries = list[tuple[str, dict[str, str]]]
BEFORE = int(time.time()) - 60  # every token in these tests was issued before every event


def old_token(user: str) -> str:
    return make_token(sub=user, tid="acme", role="member", iat=BEFORE)


async def post_revocation(gateway: Gateway, user: str) -> tuple[int, str | None]:
    """(status, event id or error code) of `session.revoked` for `user`."""
    event = {"type": "session.revoked", "user": user}
    try:
        async with gateway.request(
            "POST", "/admin/revocations", token=ADMIN_TOKEN, json=event
        ) as response:
            body = await response.json()
            return response.status, body.get("id") or body.get("error")
    except TimeoutError:
        return 0, "timeout"


async def refused(gateway: Gateway, user: str) -> bool:
    """Whether `user`'s old token is refused as session_revoked (admission; no upstream)."""
    async with gateway.request("GET", "/v1/memberships", token=old_token(user)) as response:
        body: dict[str, str] = await response.json()
        return response.status == 401 and body.get("error") == "session_revoked"


async def applied_total(gateway: Gateway) -> float:
    async with gateway.request("GET", "/metrics", token=None) as response:
        text = await response.text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "shape_gateway_revocations_applied"
        for sample in family.samples
        if sample.name.endswith("_total")
    )


@dataclass
class Readiness:
    """Polls /readyz of each gateway every 50 ms; adds up the time each was not ready."""

    gateways: list[Gateway]
    not_ready: list[float] = field(default_factory=list)

    async def watch(self) -> None:
        self.not_ready = [0.0] * len(self.gateways)
        last = time.monotonic()
        while True:
            answers = await asyncio.gather(*(self._ready(g) for g in self.gateways))
            now = time.monotonic()
            for n, is_ready in enumerate(answers):
                if not is_ready:
                    self.not_ready[n] += now - last
            last = now
            await asyncio.sleep(0.05)

    @staticmethod
    async def _ready(gateway: Gateway) -> bool:
        async with gateway.request("GET", "/readyz", token=None) as response:
            status: int = response.status
            return status == 200


@dataclass
class Poster:
    """Posts `session.revoked` for u0, u1, ... to the gateways in turn, every 50 ms."""

    gateways: list[Gateway]
    acknowledged: dict[str, str] = field(default_factory=dict)  # user -> event id
    refused: list[str] = field(default_factory=list)  # the error codes of the others
    posted: int = 0
    running: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        self.running.set()
        while True:
            await self.running.wait()
            user = f"u{self.posted}"
            gateway = self.gateways[self.posted % len(self.gateways)]
            self.posted += 1
            status, answer = await post_revocation(gateway, user)
            if status == 202 and answer is not None:
                self.acknowledged[user] = answer
            else:
                self.refused.append(str(answer))
            await asyncio.sleep(0.05)

    async def acknowledged_more(self, count: int, within: float) -> list[str]:
        """Wait for `count` more acknowledged events; their users."""
        start = len(self.acknowledged)
        deadline = time.monotonic() + within
        while len(self.acknowledged) < start + count:
            assert time.monotonic() < deadline, f"{count} more acknowledged within {within} s"
            await asyncio.sleep(0.02)
        return list(self.acknowledged)[start : start + count]


async def enforced_everywhere(gateways: list[Gateway], users: list[str], within: float) -> None:
    deadline = time.monotonic() + within
    for gateway in gateways:
        for user in users:
            while not await refused(gateway, user):
                assert time.monotonic() < deadline, f"{user} not refused within {within} s"
                await asyncio.sleep(0.05)


def cut_replication(group: Replicated) -> None:
    """The replica stops receiving: the master drops its link, and the replica cannot log in
    again (a wrong masterauth), so the master counts no replica and waits for none."""
    replica = group.replica.client()
    master = group.master.client()
    try:
        replica.config_set("masterauth", "not-the-password")
        master.client_kill_filter(_type="replica")
    finally:
        replica.close()
        master.close()

    def unlinked() -> bool:
        client = group.master.client()
        try:
            return int(client.info("replication")["connected_slaves"]) == 0
        finally:
            client.close()

    wait_for(unlinked, "the master drops its replica")


def stream_ids(group: Replicated, port: int) -> set[str]:
    """Original ids of the revocation entries on the server at `port`."""
    for server in (group.master, group.replica):
        if server.port == port:
            client = server.client()
            try:
                entries = cast(Entries, client.xrange(revocation_stream(PREFIX)))
            finally:
                client.close()
            return {fields.get("origin") or entry_id for entry_id, fields in entries}
    raise AssertionError(f"no server on port {port}")


async def test_failover_keeps_every_acknowledged_revocation_enforced_once_everywhere(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory,
    redis_servers: RedisServers,
) -> None:  # fmt: skip
    group = redis_servers.replicated()
    electric = await electric_factory(long_poll_timeout=30.0)
    gateways = [await replica(gateway_factory, world, electric, group.url, PREFIX)
                for _ in range(3)]  # fmt: skip
    held_users = [f"held{n}" for n in range(3)]
    holds = []
    for gateway, user in zip(gateways, held_users, strict=True):
        handle, offset, cursor = await sync_to_live(gateway, old_token(user))
        live = {"table": "tasks", "offset": offset, "handle": handle, "live": "true",
                "cursor": cursor}  # fmt: skip
        holds.append((gateway, user, live))
    readiness, poster = Readiness(gateways), Poster(gateways)
    async with asyncio.TaskGroup() as group_tasks:
        polls = [group_tasks.create_task(fetch(g, live, old_token(u))) for g, u, live in holds]
        await electric.state.wait_for(lambda s: s.held_requests == 3)
        watcher = group_tasks.create_task(readiness.watch())
        posting = group_tasks.create_task(poster.run())

        # 1. Replicated: each 202 came after the replica had the entry.
        replicated = await poster.acknowledged_more(10, within=10)
        poster.running.clear()
        cut_replication(group)
        assert {poster.acknowledged[u] for u in replicated} <= stream_ids(group, group.replica.port)

        # 2. Replication is cut: three events are on the master alone (no replica to wait
        # for) and applied by every gateway. Then the master refuses writes without a replica
        # (min-replicas-to-write, the setting for no acknowledged loss at all) and dies with
        # them while events keep coming.
        poster.running.set()
        missed = await poster.acknowledged_more(3, within=5)
        poster.running.clear()
        await enforced_everywhere(gateways, missed, within=2)
        master = group.master.client()
        master.config_set("min-replicas-to-write", 1)
        master.close()
        poster.running.set()
        await asyncio.sleep(0.2)
        group.master.kill()
        killed_at = time.monotonic()
        await until(lambda: group.master_port() == group.replica.port, "Sentinel promotes", 10)
        after = await poster.acknowledged_more(5, within=15)
        failover_seconds = time.monotonic() - killed_at

        # 3. On the new master: the held long-polls are cut by new events.
        for gateway, user, _ in holds:
            assert (await post_revocation(gateway, user))[0] == 202
        endings = [await asyncio.wait_for(poll, 5) for poll in polls]
        posting.cancel()
        watcher.cancel()

    acknowledged = list(poster.acknowledged)
    assert set(missed) <= set(acknowledged)
    assert not set(missed) & set(replicated)
    assert [(status, body["error"]) for status, _, body in endings] == [
        (401, "session_revoked")
    ] * 3
    late = await replica(gateway_factory, world, electric, group.url, PREFIX)
    everyone = [*gateways, late]
    await enforced_everywhere(everyone, acknowledged + held_users, within=10)
    distinct = stream_ids(group, group.replica.port)
    assert {poster.acknowledged[u] for u in acknowledged} <= distinct
    totals = [await applied_total(g) for g in everyone]
    assert totals == [len(distinct)] * len(everyone)  # each distinct event applied once
    print(
        f"\nfailover: {poster.posted} posted, {len(acknowledged)} acknowledged "
        f"({len(missed)} of them on the lost master only), {len(poster.refused)} refused "
        f"({sorted(set(poster.refused))}); {len(distinct)} distinct events in the promoted "
        f"stream, each applied once by all {len(everyone)} replicas "
        f"(applied_total {totals}); Sentinel promoted and the first event was acknowledged "
        f"{failover_seconds:.1f} s after the kill; not ready per replica: "
        + ", ".join(f"{s:.2f} s" for s in readiness.not_ready)
    )
    assert max(readiness.not_ready) < 10.0
    assert len(after) == 5


async def test_a_publish_no_replica_confirms_is_refused_yet_enforced(
    gateway_factory: GatewayFactory, redis_servers: RedisServers
) -> None:
    group = redis_servers.replicated()
    master_url = group.master.url  # a plain URL to a master that has a replica
    a = await gateway_factory(redis_url=master_url, redis_prefix=PREFIX)  # waits up to 1 s
    await ready(a)
    status, event_id = await post_revocation(a, "alice")
    assert status == 202
    assert event_id in stream_ids(group, group.replica.port)
    group.replica.pause()  # connected, but it never acknowledges
    try:
        started = time.monotonic()
        status, error = await post_revocation(a, "bob")
        assert (status, error) == (503, "revocation_state_stale")
        assert 1.0 <= time.monotonic() - started < 3.0
        assert await refused(a, "bob")  # on the master, so applied: only its durability is in doubt
        env = {**os.environ, "REDIS_URL": master_url, "GATEWAY_REDIS_PREFIX": PREFIX,
               "GATEWAY_REVOCATION_WAIT_MS": "300"}  # fmt: skip
        cli = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "revoke", "session.revoked", "--user", "dave",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(cli.communicate(), 20)
        assert (cli.returncode, out) == (1, b"")
        assert b"no replica confirmed it within 300 ms" in err
    finally:
        group.replica.resume()
    assert (await post_revocation(a, "carol"))[0] == 202  # the replica confirms again
