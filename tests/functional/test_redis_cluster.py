"""A real Redis Cluster (three masters, each with a replica, started from `redis-server
--cluster-enabled yes` and formed by `redis-cli --cluster create`) under two gateway replicas
logged in as a user with only the documented ACL: revocations published (acknowledged by the
stream's replica) and followed, rate limits and live caps shared, audit events de-duplicated.
Every script and multi-key command names keys of one slot (their hash tags), or the Cluster
would refuse it with CROSSSLOT.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, cast

import pytest
import redis
from redis.crc import key_slot

from gateway.redis_keys import audit_stream, revocation_stream, tenant_key
from tests.factories import RULES_YAML, make_token
from tests.functional.test_revocation_functional import ready
from tests.gateway import ADMIN_TOKEN, Gateway, GatewayFactory
from tests.redis_servers import Cluster, RedisServers

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
