"""A real Redis Cluster (three masters, each with a replica, started from `redis-server
--cluster-enabled yes` and formed by `redis-cli --cluster create`) under two gateway replicas
logged in as a user with only the documented ACL: revocations published (acknowledged by the
stream's replica) and followed, rate limits and live caps shared, audit events de-duplicated.
Every script and multi-key command names keys of one slot (their hash tags), or the Cluster
would refuse it with CROSSSLOT. And a master that dies while not holding the revocation
stream delays no revocation (the gateways read and write the stream on its own node).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, cast

import pytest
import redis
from redis.crc import key_slot

from gateway.redis.keys import audit_stream, revocation_stream, tenant_key
from tests.factories import RULES_YAML, make_token
from tests.functional.enforcement import (
    PROMISE,
    AdminPoster,
    Applied,
    lateness,
    refused_everywhere,
    summary,
    until,
)
from tests.functional.test_revocation_functional import ready
from tests.gateway import ADMIN_TOKEN, Gateway, GatewayFactory
from tests.redis_servers import Cluster, RedisProcess, RedisServers

pytestmark = [pytest.mark.redis]
PREFIX = "gw-cluster"
RULES = RULES_YAML + (
    "limits:\n  default: {requests_per_minute: 6, tenant_requests_per_minute: 1000, "
    "live_connections_per_user: 1}\n"
)
BEFORE = int(time.time()) - 60


def cluster_client(cluster: Cluster) -> redis.RedisCluster:
    node = cluster.nodes[0]
    return redis.RedisCluster(host="127.0.0.1", port=node.port, decode_responses=True)


def node_client(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, decode_responses=True)


def replica_entries(admin: redis.RedisCluster, key: str) -> list[str]:
    """The ids of `key`'s stream on the replica of the master holding it."""
    master = admin.get_node_from_key(key)  # type: ignore[no-untyped-call]  # untyped in redis-py
    client = node_client(master.port)
    try:
        replica_port = int(client.info("replication")["slave0"]["port"])
    finally:
        client.close()
    replica = node_client(replica_port)
    try:
        replica.readonly()  # a cluster replica answers reads only after this
        entries = cast(list[tuple[str, dict[str, str]]], replica.xrange(key))
        return [entry_id for entry_id, _ in entries]
    finally:
        replica.close()


async def gateways_on(factory: GatewayFactory, cluster: Cluster, count: int) -> list[Gateway]:
    """Gateways logging in as a user with the ACL docs/redis.md gives (and CLUSTER SLOTS)."""
    cluster.add_gateway_user("gateway", "cluster-password", PREFIX)
    url = cluster.url.replace("://", "://gateway:cluster-password@")
    started = []
    for _ in range(count):
        gateway = await factory(rules=RULES, redis_url=url, redis_prefix=PREFIX,
                                live_lease_seconds=3)  # fmt: skip
        await ready(gateway)
        started.append(gateway)
    return started


async def status(gateway: Gateway, token: str, path: str = "/v1/memberships") -> tuple[int, Any]:
    async with gateway.request("GET", path, token=token) as response:
        return response.status, (await response.json()).get("error")


async def test_revocations_limits_and_audit_work_across_a_three_master_cluster(
    gateway_factory: GatewayFactory, redis_servers: RedisServers
) -> None:
    cluster = redis_servers.cluster(masters=3, replicas=1)
    a, b = await gateways_on(gateway_factory, cluster, 2)
    admin = cluster_client(cluster)
    try:
        # The keys used together share a slot; the concerns spread over the masters.
        slots = {name: key_slot(key.encode()) for name, key in {
            "revocations": revocation_stream(PREFIX),
            "audit": audit_stream(PREFIX),
            "acme": tenant_key(PREFIX, "rl:t", "acme"),
        }.items()}  # fmt: skip
        assert key_slot(tenant_key(PREFIX, "rl:u", "acme", "alice").encode()) == slots["acme"]
        assert len({admin.nodes_manager.get_node_from_slot(s).name for s in slots.values()}) > 1

        # Revocation: published on a (the stream's replica confirms), enforced by b.
        alice = make_token(sub="alice", tid="acme", role="member", iat=BEFORE)
        event = {"type": "membership.revoked", "user": "alice", "tenant": "acme"}
        async with a.request("POST", "/admin/revocations", token=ADMIN_TOKEN, json=event) as r:
            assert r.status == 202, await r.text()
            event_id = (await r.json())["id"]
        deadline = time.monotonic() + 2
        while await status(b, alice) != (403, "access_revoked"):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        entries = cast(list[tuple[str, dict[str, str]]], admin.xrange(revocation_stream(PREFIX)))
        assert [entry_id for entry_id, _ in entries] == [event_id]
        assert event_id in replica_entries(admin, revocation_stream(PREFIX))  # WAIT saw to it

        # Rate limit: bob's six requests a minute, shared by both replicas.
        bob = make_token(sub="bob", tid="acme", role="member")
        answers = [await status(a if n % 2 else b, bob) for n in range(7)]
        assert answers == [(200, None)] * 6 + [(429, "rate_limited")]

        # Live cap: carol's one live slot, held on a, is taken on b too.
        carol = make_token(sub="carol", tid="acme", role="member")
        async with a.request("GET", "/v1/events", token=carol) as feed:
            assert feed.status == 200
            await asyncio.sleep(1.5)  # past a renewal (lease 3 s, renewed every second)
            assert await status(b, carol, "/v1/events") == (429, "too_many_live_connections")

        # Audit: a batch resent to the other replica is de-duplicated.
        dave = make_token(sub="dave", tid="acme", role="member")
        batch = [{"id": "e1", "action": "update"}, {"id": "e2", "action": "delete"}]
        for gateway, expected in ((a, ["e1", "e2"]), (b, [])):
            async with gateway.request(
                "POST", "/v1/audit-events", token=dave, json=batch
            ) as response:
                assert (await response.json())["accepted"] == expected
        audit = cast(list[tuple[str, dict[str, str]]], admin.xrange(audit_stream(PREFIX)))
        assert [json.loads(fields["event"])["id"] for _, fields in audit] == ["e1", "e2"]
    finally:
        admin.close()


def masters_of(cluster: Cluster) -> list[RedisProcess]:
    """The nodes that answer as masters."""
    found = []
    for node in cluster.nodes:
        client = node.client()
        try:
            if client.info("replication")["role"] == "master":
                found.append(node)
        except redis.ConnectionError:
            continue  # a node the test killed
        finally:
            client.close()
    return found


class Refusals:
    """Reads the stream on the node that holds it every 10 ms; when it answered CLUSTERDOWN."""

    def __init__(self, node: RedisProcess) -> None:
        self.client = node.client()
        self.down: list[float] = []  # monotonic instants of CLUSTERDOWN answers

    def probe(self) -> None:
        try:
            self.client.xlen(revocation_stream(PREFIX))
        except redis.exceptions.ClusterDownError:
            self.down.append(time.monotonic())

    async def run(self) -> None:
        try:
            while True:
                await asyncio.to_thread(self.probe)
                await asyncio.sleep(0.01)
        finally:
            self.client.close()

    @property
    def window(self) -> float:
        return self.down[-1] - self.down[0] if self.down else 0.0


async def test_a_dead_cluster_master_that_does_not_hold_the_stream_delays_no_revocation(
    gateway_factory: GatewayFactory, redis_servers: RedisServers
) -> None:
    cluster = redis_servers.cluster(masters=3, replicas=1)
    admin = cluster_client(cluster)
    owner = admin.get_node_from_key(revocation_stream(PREFIX)).port  # type: ignore[no-untyped-call]  # untyped in redis-py
    admin.close()
    victim = next(n for n in masters_of(cluster) if n.port != owner)
    gateways = []
    for _ in range(3):
        gateway = await gateway_factory(redis_url=cluster.url, redis_prefix=PREFIX)
        await ready(gateway)
        gateways.append(gateway)
    applied = [Applied(g) for g in gateways]
    poster = AdminPoster(gateways)
    refusals = Refusals(next(n for n in cluster.nodes if n.port == owner))
    async with asyncio.TaskGroup() as tasks:
        running = [tasks.create_task(poster.run()), tasks.create_task(refusals.run())]
        await poster.acknowledged_more(10, within=10)
        victim.kill()
        killed_at = time.monotonic()
        await until(lambda: len(masters_of(cluster)) == 3, "its replica is promoted", 15)
        recovered_in = time.monotonic() - killed_at
        await poster.acknowledged_more(20, within=10)
        for task in running:
            task.cancel()
    await asyncio.sleep(PROMISE)
    lags, missing = lateness(poster.acknowledged, applied)
    after = [e for e, at in poster.acknowledged.items() if at > killed_at]
    print(
        f"\ncluster master (not the stream's) killed: its replica was promoted "
        f"{recovered_in:.1f} s later; the stream's node refused commands (CLUSTERDOWN) for "
        f"{refusals.window:.2f} s; {len(poster.acknowledged)} publishes acknowledged "
        f"({len(after)} after the kill), the others answered {dict(poster.answers)}; "
        f"acknowledgement to enforcement: {summary(lags)}"
    )
    assert not missing
    assert max(lags) <= PROMISE
    await refused_everywhere(gateways, sorted(poster.acknowledged), within=5)
