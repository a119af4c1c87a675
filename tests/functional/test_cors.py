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
        # credentialed mode, so Clear-Site-Data on a later refusal applies cross-origin too
        assert response.headers["Access-Control-Allow-Credentials"] == "true"


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


async def test_a_shape_with_local_ttl_says_so_in_every_answer_readable_cross_origin(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    rules = world.rules.replace("    client_where:", "    local_ttl: 24h\n    client_where:")
    gateway = await gateway_factory(
        upstream=str(electric.url), rules=rules, electric_secret=ELECTRIC_SECRET,
        cors_origins=(APP,),
    )  # fmt: skip
    headers = {"Origin": APP}
    async with gateway.shape({"table": "tasks", "offset": "-1"}, headers=headers) as snapshot:
        assert snapshot.status == 200
        assert snapshot.headers["Shape-Gateway-Local-TTL"] == "86400"
        exposed = snapshot.headers["Access-Control-Expose-Headers"].split(", ")
        assert "shape-gateway-local-ttl" in exposed
        position = {
            "handle": snapshot.headers["electric-handle"],
            "offset": snapshot.headers["electric-offset"],
        }
        etag = snapshot.headers["etag"]
    async with gateway.shape({"table": "tasks", **position}, headers=headers) as catch_up:
        assert catch_up.status == 200
        assert catch_up.headers["Shape-Gateway-Local-TTL"] == "86400"
    revalidate = {**headers, "If-None-Match": etag}
    async with gateway.shape({"table": "tasks", "offset": "-1"}, headers=revalidate) as cached:
        assert cached.status == 304
        assert cached.headers["Shape-Gateway-Local-TTL"] == "86400"
    async with gateway.shape({"table": "big", "offset": "-1"}, headers=headers,
                             token=make_token(role="admin")) as other:  # fmt: skip
        assert other.status == 200
        assert "Shape-Gateway-Local-TTL" not in other.headers
