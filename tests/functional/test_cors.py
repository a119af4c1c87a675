"""CORS is the gateway's: preflights answered, every response to an allowed origin (errors
included) readable by the browser, `electric-*` headers exposed, Electric's own CORS dropped."""

from __future__ import annotations

import pytest

from tests.factories import make_token
from tests.functional.conftest import ELECTRIC_SECRET, Electric, World
from tests.gateway import Gateway, GatewayFactory

pytestmark = [pytest.mark.postgres, pytest.mark.across_electric_versions]

APP = "https://app.example.com"


async def cors_gateway(factory: GatewayFactory, world: World, electric: Electric) -> Gateway:
    return await factory(upstream=str(electric.url), rules=world.rules,
                         electric_secret=ELECTRIC_SECRET, cors_origins=(APP,))  # fmt: skip


async def test_preflight_is_answered_without_a_token(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await cors_gateway(gateway_factory, world, electric)
    headers = {"Origin": APP, "Access-Control-Request-Method": "GET",
               "Access-Control-Request-Headers": "authorization, x-tenant-id, x-evil"}  # fmt: skip
    async with gateway.request("OPTIONS", token=None, headers=headers) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == APP
        allowed = response.headers["Access-Control-Allow-Headers"].lower()
        assert "authorization" in allowed
        assert "x-evil" not in allowed
    assert electric.state.requests == []


async def test_proxied_response_exposes_electric_headers_to_the_allowed_origin(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await cors_gateway(gateway_factory, world, electric)
    query = {"table": "tasks", "offset": "-1"}
    async with gateway.shape(query, headers={"Origin": APP}) as response:
        assert response.status == 200
        assert response.headers.getall("Access-Control-Allow-Origin") == [APP]
        exposed = response.headers["Access-Control-Expose-Headers"]
        for name in ("electric-offset", "electric-handle", "electric-schema", "electric-cursor"):
            assert name in exposed
        assert "Origin" in response.headers["Vary"]


async def test_errors_carry_cors_so_the_browser_can_read_a_401(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await cors_gateway(gateway_factory, world, electric)
    async with gateway.shape({"table": "tasks"}, token=None, headers={"Origin": APP}) as response:
        assert response.status == 401
        assert response.headers["Access-Control-Allow-Origin"] == APP


async def test_other_origins_get_no_cors_headers(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await cors_gateway(gateway_factory, world, electric)
    query = {"table": "tasks", "offset": "-1"}
    headers = {"Origin": "https://evil.example"}
    async with gateway.shape(query, headers=headers, token=make_token()) as response:
        assert "Access-Control-Allow-Origin" not in response.headers
