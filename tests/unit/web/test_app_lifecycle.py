"""Clean lifecycles: whatever a replica's concurrency, it holds a bounded number of Redis
connections; at shutdown each background task stops before the client it uses closes, and
every connection is released."""

from __future__ import annotations

import asyncio

import pytest
import redis
from structlog.testing import capture_logs

from tests.factories import make_token
from tests.functional.test_revocation_functional import ready
from tests.gateway import GatewayFactory
from tests.redis_servers import RedisServers

pytestmark = pytest.mark.redis
POOL = 4


def clients_connected(url: str) -> int:
    """Connections Redis has open, this check's own excluded."""
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("clients")["connected_clients"]) - 1
    finally:
        client.close()


async def test_a_burst_uses_a_bounded_pool_and_shutdown_releases_every_connection(
    gateway_factory: GatewayFactory, redis_servers: RedisServers
) -> None:
    own_redis = redis_servers.single()  # of this test's own: its clients are all the gateway's
    gateway = await gateway_factory(redis_url=own_redis.url, redis_pool_size=POOL)
    await ready(gateway)
    tokens = [make_token(sub=f"user-{n}") for n in range(50)]

    async def member(token: str) -> int:
        async with gateway.request("GET", "/v1/memberships", token=token) as response:
            return int(response.status)

    async def audit(token: str) -> int:
        body = [{"id": f"e-{token[-8:]}", "action": "update"}]
        async with gateway.request("POST", "/v1/audit-events", token=token, json=body) as response:
            return int(response.status)

    async def feed(token: str) -> int:
        async with gateway.request("GET", "/v1/events", token=token) as response:
            await response.content.readline()
            return int(response.status)

    statuses = await asyncio.gather(
        *(member(t) for t in tokens * 4), *(audit(t) for t in tokens), *(feed(t) for t in tokens)
    )
    assert set(statuses) == {200}
    # limits and audit: a pool each; the revocation follower: 4 (a blocking XREAD holds one)
    assert 0 < clients_connected(own_redis.url) <= 2 * POOL + 4
    with capture_logs() as logs:
        await gateway.runner.cleanup()
    assert clients_connected(own_redis.url) == 0
    failures = [e for e in logs if e.get("log_level") in ("warning", "error")]
    assert failures == []
