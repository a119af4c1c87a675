"""A wrong ELECTRIC_URL is found at start, not by the first client: each upstream is probed
(`GET /v1/health`) at start and periodically, what does not answer is logged and shown to the
admin, and readiness follows the default upstream (a sidecar's own Electric)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from electric_imitation import ElectricConfig, make_electric_app
from tests.electric_targets import ElectricTarget
from tests.functional.conftest import ELECTRIC_SECRET, Electric
from tests.functional.test_redis_outages import admin_status, until_logged
from tests.gateway import Gateway, GatewayFactory
from tests.services import free_port

pytestmark = [pytest.mark.postgres]
DEAD = "http://127.0.0.1:1"  # nothing listens (the factory's own dead upstream is not probed)


async def readyz(gateway: Gateway) -> int:
    async with gateway.request("GET", "/readyz", token=None) as response:
        status: int = response.status
        return status


async def until_ready(gateway: Gateway, expected: int, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while (status := await readyz(gateway)) != expected:
        assert time.monotonic() < deadline, f"/readyz {status}, wanted {expected}"
        await asyncio.sleep(0.05)


async def test_a_wrong_electric_url_is_logged_at_start_and_the_replica_is_not_ready(
    gateway_factory: GatewayFactory,
) -> None:
    with capture_logs() as logs:
        gateway = await gateway_factory(upstream=DEAD)
        logged = await until_logged(logs, "upstream_unavailable", upstream="default")
    assert logged["target"] == DEAD
    assert "ELECTRIC_URL" in logged["check"]
    assert await readyz(gateway) == 503
    status = await admin_status(gateway)
    assert status["ready"] is False
    default = status["upstreams"]["default"]
    assert (default["url"], default["reachable"]) == (DEAD, False)
    assert default["outage"]["failures"] == 1
    assert "127.0.0.1:1" in default["outage"]["last_error"]


async def test_an_upstream_that_is_not_electric_is_named_as_such(
    gateway_factory: GatewayFactory, electric: Electric
) -> None:
    """A URL with a path Electric does not serve (a typo'd base path): its 404 is not Electric."""
    with capture_logs() as logs:
        gateway = await gateway_factory(upstream=f"{electric.url}/electric")
        logged = await until_logged(logs, "upstream_unavailable", upstream="default")
    assert logged["reason"] == "answered 404 to GET /v1/health, not like Electric"
    assert "base URL" in logged["check"]
    assert await readyz(gateway) == 503


async def test_a_reachable_electric_makes_the_replica_ready_and_is_shown_active(
    gateway_factory: GatewayFactory, electric: Electric
) -> None:
    gateway = await gateway_factory(upstream=str(electric.url), electric_secret=ELECTRIC_SECRET)
    await until_ready(gateway, 200)
    default = (await admin_status(gateway))["upstreams"]["default"]
    assert (default["reachable"], default["electric_status"]) == (True, "active")
    assert "outage" not in default


async def test_electric_started_after_the_gateway_is_found_and_its_recovery_logged(
    gateway_factory: GatewayFactory, electric_target: ElectricTarget, electric_database_url: str
) -> None:
    if electric_target.real is not None:
        pytest.skip("starts the imitation on a port of its own")
    port = free_port()
    with capture_logs() as logs:
        gateway = await gateway_factory(
            upstream=f"http://127.0.0.1:{port}", upstream_probe_seconds=1
        )
        await until_logged(logs, "upstream_unavailable", upstream="default")
        app = make_electric_app(
            ElectricConfig(dsn=electric_database_url, version=electric_target.version)
        )
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            recovered = await until_logged(logs, "upstream_recovered", upstream="default")
            await until_ready(gateway, 200)
        finally:
            await runner.cleanup()
    assert recovered["down_seconds"] >= 0


async def test_one_of_several_upstreams_down_leaves_the_replica_ready_and_says_which(
    gateway_factory: GatewayFactory, electric: Electric
) -> None:
    rules = f"""\
version: 1
roles: [member]
upstreams:
  eu: {{url: "{DEAD}"}}
shapes:
  countries: {{table: public.countries, public: true}}
"""
    with capture_logs() as logs:
        gateway = await gateway_factory(upstream=str(electric.url), rules=rules)
        await until_logged(logs, "upstream_unavailable", upstream="eu")
    await until_ready(gateway, 200)
    upstreams: dict[str, Any] = (await admin_status(gateway))["upstreams"]
    assert upstreams["default"]["reachable"] is True
    assert upstreams["eu"]["reachable"] is False
    assert "the rules' upstreams" in upstreams["eu"]["outage"]["check"]


async def test_probing_off_leaves_readiness_to_redis_and_the_audit_log(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory(upstream=DEAD, upstream_probe_seconds=0)
    assert await readyz(gateway) == 200
    assert (await admin_status(gateway))["upstreams"]["default"]["reachable"] is None
