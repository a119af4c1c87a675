"""Cookie authentication as browsers send it: a same-origin GET carries no Origin and is
accepted; a cookie is refused on requests a cross-site page could make it ride along on."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import make_token
from tests.gateway import Gateway, GatewayFactory

APP = "https://app.example.com"
COOKIE = "sg_token"


async def cookie_gateway(factory: GatewayFactory) -> Gateway:
    return await factory(auth_cookie=COOKIE, cors_origins=(APP,))


async def answer(
    gateway: Gateway, method: str, path: str, headers: dict[str, str], **kwargs: Any
) -> tuple[int, str | None]:
    async with gateway.request(method, path, token=None, headers=headers, **kwargs) as response:
        body = await response.json() if method != "HEAD" and response.status >= 400 else {}
        return response.status, body.get("error")


def with_cookie(**headers: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={make_token()}", **headers}


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, 200),  # a same-origin GET: browsers send no Origin
        ({"Origin": APP}, 200),
        ({"Sec-Fetch-Site": "same-origin"}, 200),
        ({"Sec-Fetch-Site": "same-site"}, 200),
        ({"Origin": "https://evil.example"}, 401),
        ({"Origin": "null"}, 401),  # sandboxed iframes and file: pages
        ({"Sec-Fetch-Site": "cross-site"}, 401),
        ({"Origin": APP, "Sec-Fetch-Site": "cross-site"}, 401),
    ],
)
async def test_cookie_get_is_accepted_unless_the_browser_says_it_is_cross_site(
    gateway_factory: GatewayFactory, method: str, headers: dict[str, str], expected: int
) -> None:
    gateway = await cookie_gateway(gateway_factory)
    status, error = await answer(gateway, method, "/v1/memberships", with_cookie(**headers))
    assert status == expected
    if expected == 401 and method == "GET":
        assert error == "invalid_token"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Origin": APP}, 200),
        ({}, 401),  # every browser sends Origin on a POST: its absence is not a browser's
        ({"Origin": "https://evil.example"}, 401),
        ({"Sec-Fetch-Site": "same-origin"}, 401),
        ({"Origin": APP, "Sec-Fetch-Site": "same-site"}, 200),
        ({"Origin": APP, "Sec-Fetch-Site": "cross-site"}, 401),  # the browser says so
        ({"Origin": APP, "Sec-Fetch-Site": " Cross-Site "}, 401),
    ],
)
async def test_cookie_post_needs_an_allowed_origin_and_no_cross_site_fetch(
    gateway_factory: GatewayFactory, headers: dict[str, str], expected: int
) -> None:
    gateway = await cookie_gateway(gateway_factory)
    status, error = await answer(
        gateway, "POST", "/v1/audit-events", with_cookie(**headers), json=[]
    )
    assert status == expected
    if expected == 401:
        assert error == "invalid_token"


async def test_a_second_cookie_of_the_same_name_is_refused(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await cookie_gateway(gateway_factory)
    tossed = f"{COOKIE}={make_token(sub='mallory')}; other=1; {COOKIE}={make_token()}"
    assert await answer(gateway, "GET", "/v1/memberships", {"Cookie": tossed}) == (
        401,
        "invalid_token",
    )


async def test_a_bearer_token_is_not_held_to_the_cookie_rules(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await cookie_gateway(gateway_factory)
    headers = {"Authorization": f"Bearer {make_token()}", "Sec-Fetch-Site": "cross-site",
               "Origin": "https://evil.example"}  # fmt: skip
    assert await answer(gateway, "POST", "/v1/audit-events", headers, json=[]) == (200, None)


async def test_cookie_authenticated_answers_vary_on_cookie(gateway_factory: GatewayFactory) -> None:
    gateway = await cookie_gateway(gateway_factory)
    async with gateway.request(
        "GET", "/v1/memberships", token=None, headers=with_cookie()
    ) as response:
        assert response.status == 200
        assert "Cookie" in response.headers["Vary"]
    async with gateway.request(
        "GET", "/v1/memberships", token=None, headers=with_cookie(Origin=APP)
    ) as response:
        assert response.headers["Access-Control-Allow-Origin"] == APP
        assert response.headers["Access-Control-Allow-Credentials"] == "true"


async def test_without_the_cookie_setting_a_cookie_is_not_a_credential(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory()
    assert await answer(gateway, "GET", "/v1/memberships", with_cookie()) == (401, "missing_token")
