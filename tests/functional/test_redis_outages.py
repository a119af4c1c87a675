"""An unreachable Redis is never silent: each failing job is logged with the address (never the
password) and what to check, shown in GET /admin/status with since when and the last error,
and its recovery is logged too."""

from __future__ import annotations

import asyncio
import time
from collections.abc import MutableMapping
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.factories import make_token
from tests.gateway import ADMIN_TOKEN, Gateway, GatewayFactory
from tests.redis_servers import RedisServers
from tests.services import free_port

pytestmark = [pytest.mark.redis]
PASSWORD = "hunter2-never-in-a-log"


async def admin_status(gateway: Gateway) -> dict[str, Any]:
    async with gateway.request("GET", "/admin/status", token=ADMIN_TOKEN) as response:
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def until_logged(
    logs: list[MutableMapping[str, Any]], event: str, within: float = 5.0, **fields: str
) -> MutableMapping[str, Any]:
    deadline = time.monotonic() + within
    while True:
        for entry in logs:
            if entry["event"] == event and all(entry.get(k) == v for k, v in fields.items()):
                return entry
        assert time.monotonic() < deadline, f"no {event} {fields} in {[e['event'] for e in logs]}"
        await asyncio.sleep(0.05)


async def test_an_unreachable_redis_is_logged_with_its_address_and_shown_to_the_admin(
    gateway_factory: GatewayFactory,
) -> None:
    port = free_port()
    with capture_logs() as logs:
        gateway = await gateway_factory(
            redis_url=f"redis://:{PASSWORD}@127.0.0.1:{port}/0", fail_mode="open",
            upstream_probe_seconds=0,
        )  # fmt: skip
        logged = await until_logged(logs, "redis_unavailable", job="revocations")
        async with gateway.request("GET", "/v1/memberships") as response:
            assert response.status == 200  # fail mode open: limits fail open, logged
        await until_logged(logs, "redis_unavailable", job="limits")
        await asyncio.sleep(1.5)  # the follower retries: no line per retry
    assert logged["target"] == f"127.0.0.1:{port}"
    assert "REDIS_URL" in logged["check"]
    assert f"connecting to 127.0.0.1:{port}" in logged["reason"]
    assert PASSWORD not in repr(logs)
    assert len([e for e in logs if e["event"] == "redis_unavailable"]) == 2

    status = await admin_status(gateway)
    assert status["ready"] is False
    assert status["revocations"]["fresh"] is False
    assert status["redis"]["target"] == f"127.0.0.1:{port}"
    revocations = status["redis"]["jobs"]["revocations"]
    assert revocations["ok"] is False
    assert revocations["failures"] >= 2
    assert revocations["since"].endswith("Z")
    assert f"connecting to 127.0.0.1:{port}" in revocations["last_error"]
    assert status["redis"]["jobs"]["limits"]["ok"] is False
    assert status["redis"]["jobs"]["audit"] == {"ok": True}  # nothing was written to it yet
    assert PASSWORD not in repr(status)
    async with gateway.request("GET", "/metrics", token=None) as response:
        metrics = await response.text()
    assert 'shape_gateway_dependency_up{kind="redis",name="revocations"} 0.0' in metrics


async def test_the_end_of_a_redis_outage_is_logged_and_the_status_clears(
    gateway_factory: GatewayFactory, redis_servers: RedisServers
) -> None:
    server = redis_servers.single()
    with capture_logs() as logs:
        gateway = await gateway_factory(
            redis_url=server.url, redis_prefix="gw-outage", upstream_probe_seconds=0
        )
        await until_logged(logs, "revocation_stream_following")
        server.kill()
        await until_logged(logs, "redis_unavailable", job="revocations")
        redis_servers.single("again", port=server.port)
        recovered = await until_logged(logs, "redis_recovered", job="revocations", within=10)
    assert recovered["target"] == f"127.0.0.1:{server.port}"
    assert recovered["down_seconds"] > 0
    status = await admin_status(gateway)
    assert status["redis"]["jobs"]["revocations"] == {"ok": True}
    async with gateway.request("GET", "/v1/memberships", token=make_token()) as response:
        assert response.status == 200


async def test_the_status_is_for_the_admin_token_only(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory()
    async with gateway.request("GET", "/admin/status", token=None) as response:
        assert response.status == 401
    async with gateway.request("GET", "/admin/status") as response:  # a user's JWT
        assert response.status == 401
    unconfigured = await gateway_factory(admin_token=None)
    async with unconfigured.request("GET", "/admin/status", token=ADMIN_TOKEN) as response:
        assert response.status == 401  # no admin API at all: the token is just a bad JWT
