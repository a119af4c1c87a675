"""Authentication comes first: nothing is examined or answered before it, except preflights
and health routes; every refusal is JSON `{error, message}` with private caching."""

from __future__ import annotations

import asyncio
import math

import pytest
from multidict import CIMultiDict
from yarl import URL

from tests.factories import make_token
from tests.gateway import ADMIN_TOKEN, GatewayFactory


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/shape?table=tasks&offset=-1"),
        ("GET", "/v1/shape?secret=x&table=a&table=b"),  # not even parameters are looked at
        ("DELETE", "/v1/shape"),
        ("POST", "/v1/shape"),
        ("GET", "/nowhere"),
        ("GET", "/v1/events"),
        ("GET", "/admin/rules"),
    ],
)
async def test_unauthenticated_request_gets_401_missing_token_and_nothing_else(
    gateway_factory: GatewayFactory, method: str, path: str
) -> None:
    gateway = await gateway_factory()
    async with gateway.session.request(method, gateway.url.join(URL(path))) as response:
        assert response.status == 401
        assert (await response.json())["error"] == "missing_token"
        assert "private" in response.headers["Cache-Control"]
        assert "Authorization" in response.headers["Vary"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        ("Basic YWxpY2U6cHc=", "invalid_token"),
        ("Bearer", "invalid_token"),
        ("Bearer not-a-jwt", "invalid_token"),
        (f"Bearer {make_token(key='some-other-secret-some-other-secret')}", "invalid_token"),
        (f"Bearer {make_token(iat=1_000_000, exp=1_000_060)}", "token_expired"),
        (f"Bearer {'x' * 9000}", "invalid_token"),
        (f"Bearer {make_token(exp=math.nan)}", "invalid_token"),  # was a 500
        (f"Bearer {make_token(exp=math.inf)}", "invalid_token"),  # was a 500
        ("Bearer " + make_token(sub="ali\x00ce"), "invalid_token"),  # was bound upstream
        ("Bearer " + make_token(tid="acme\r\nx"), "invalid_token"),
    ],
)
async def test_bad_credentials_are_refused_with_their_code(
    gateway_factory: GatewayFactory, authorization: str, code: str
) -> None:
    gateway = await gateway_factory()
    async with gateway.request(
        "GET", token=None, headers={"Authorization": authorization}, params={"table": "tasks"}
    ) as response:
        assert response.status == 401
        assert (await response.json())["error"] == code


async def test_two_authorization_headers_are_refused(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory()
    headers = CIMultiDict([("Authorization", f"Bearer {make_token()}"),
                           ("Authorization", f"Bearer {make_token(sub='bob')}")])  # fmt: skip
    async with gateway.session.get(gateway.url.with_path("/v1/shape"), headers=headers) as response:
        assert response.status == 400


async def test_health_routes_need_no_token(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory()
    async with gateway.session.get(gateway.url.with_path("/healthz")) as response:
        assert response.status == 200
    async with gateway.session.get(gateway.url.with_path("/readyz")) as response:
        assert response.status == 200
        assert await response.json() == {"status": "ready"}  # nothing more to strangers


async def test_authenticated_unknown_path_is_404_and_delete_is_405(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory()
    async with gateway.request("GET", "/nowhere") as response:
        assert response.status == 404
        assert (await response.json())["error"] == "not_found"
    async with gateway.request("DELETE", "/v1/shape", params={"table": "tasks"}) as response:
        assert response.status == 405
        assert (await response.json())["error"] == "method_not_allowed"


async def test_upstream_that_refuses_connections_is_502_upstream_unavailable(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory(upstream="http://127.0.0.1:9")
    async with gateway.shape({"table": "tasks", "offset": "-1"}) as response:
        assert response.status == 502
        assert (await response.json())["error"] == "upstream_unavailable"


@pytest.mark.parametrize("path", ["/admin/../v1/shape", "/admin/%2e%2e/v1/shape"])
async def test_the_admin_token_does_not_reach_shapes_through_dot_segments(
    gateway_factory: GatewayFactory, path: str
) -> None:
    gateway = await gateway_factory()
    assert gateway.url.host is not None
    reader, writer = await asyncio.open_connection(gateway.url.host, gateway.url.port)
    writer.write(
        f"GET {path}?table=tasks&offset=-1 HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {ADMIN_TOKEN}\r\n\r\n".encode()
    )
    status = (await reader.readline()).split()[1]
    writer.close()
    assert status == b"404"


async def test_failed_admin_authentications_are_limited_per_address_and_counted(
    gateway_factory: GatewayFactory,
) -> None:
    """Ten wrong guesses a minute from one address; then each wrong guess is a 429 with
    Retry-After, counted apart; the right token still passes (ops are never locked out)."""
    gateway = await gateway_factory()
    for _ in range(10):
        async with gateway.request("GET", "/admin/rules", token="wrong-guess") as response:
            assert response.status == 401
    async with gateway.request("GET", "/admin/rules", token="wrong-guess") as response:
        assert response.status == 429
        assert (await response.json())["error"] == "rate_limited"
        assert 1 <= int(response.headers["Retry-After"]) <= 6
    async with gateway.request("GET", "/admin/rules", token=ADMIN_TOKEN) as response:
        assert response.status == 200
    async with gateway.request("GET", "/metrics", token=None) as response:
        text = await response.text()
    assert 'shape_gateway_admin_auth_failures_total{outcome="refused"} 10.0' in text
    assert 'shape_gateway_admin_auth_failures_total{outcome="limited"} 1.0' in text
    async with gateway.shape({"table": "tasks", "offset": "-1"}) as response:
        assert response.status != 429  # shape requests of the same address are not affected
