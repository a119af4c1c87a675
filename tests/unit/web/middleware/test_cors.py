"""CORS on a real aiohttp server running only this middleware: a preflight is answered before
any handler (so without authentication), only listed origins are echoed and granted, `*` echoes
the origin and never itself, and without GATEWAY_CORS_ORIGINS no CORS header is sent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.settings import Settings
from gateway.upstream.headers import EXPOSED
from gateway.web.keys import SETTINGS
from gateway.web.middleware.cors import (
    ALLOWED_METHODS,
    MAX_AGE,
    allowed_origin,
    answer_preflights,
    apply_cors,
)

Client = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
APP = "https://app.example"


async def refuse(request: web.Request) -> web.Response:
    """A handler that stands for authentication: anything reaching it is a 401."""
    return web.json_response({"code": "missing_token"}, status=401)


async def client(aiohttp_client: Client, *origins: str) -> TestClient[web.Request, web.Application]:
    app = web.Application(middlewares=[answer_preflights])
    app[SETTINGS] = Settings(cors_origins=origins)
    app.router.add_route("*", "/v1/shape", refuse)

    async def cors(request: web.Request, response: web.StreamResponse) -> None:
        if request.method != "OPTIONS":
            apply_cors(request.app[SETTINGS], request, response.headers)

    app.on_response_prepare.append(cors)
    return await aiohttp_client(app)


async def test_a_preflight_from_a_listed_origin_is_granted_without_reaching_authentication(
    aiohttp_client: Client,
) -> None:
    gateway = await client(aiohttp_client, APP)
    response = await gateway.options(
        "/v1/shape",
        headers={
            "Origin": APP,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization, X-Evil, last-event-id",
        },
    )
    assert response.status == 204
    headers = response.headers
    assert headers["Access-Control-Allow-Origin"] == APP
    assert headers["Access-Control-Allow-Methods"] == ALLOWED_METHODS
    assert headers["Access-Control-Allow-Headers"] == "Authorization, last-event-id"
    assert headers["Access-Control-Max-Age"] == MAX_AGE
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert headers["Vary"] == "Origin"


async def test_a_preflight_asking_only_for_unlisted_headers_is_granted_none(
    aiohttp_client: Client,
) -> None:
    gateway = await client(aiohttp_client, APP)
    response = await gateway.options(
        "/v1/shape", headers={"Origin": APP, "Access-Control-Request-Headers": "x-evil"}
    )
    assert "Access-Control-Allow-Headers" not in response.headers


async def test_a_preflight_from_another_origin_is_answered_but_granted_nothing(
    aiohttp_client: Client,
) -> None:
    gateway = await client(aiohttp_client, APP)
    response = await gateway.options(
        "/v1/shape",
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert response.status == 204
    assert response.headers["Allow"] == ALLOWED_METHODS
    assert not [h for h in response.headers if h.lower().startswith("access-control-")]
    assert response.headers["Vary"] == "Origin"


async def test_an_error_to_a_listed_origin_is_readable_and_exposes_electrics_headers(
    aiohttp_client: Client,
) -> None:
    gateway = await client(aiohttp_client, APP)
    response = await gateway.get("/v1/shape", headers={"Origin": APP})
    assert response.status == 401  # GET still reaches the handler
    assert response.headers["Access-Control-Allow-Origin"] == APP
    exposed = [h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")]
    assert exposed == list(EXPOSED)
    assert "electric-handle" in exposed


async def test_without_cors_origins_no_cors_header_and_no_vary_is_sent(
    aiohttp_client: Client,
) -> None:
    gateway = await client(aiohttp_client)
    for method in ("OPTIONS", "GET"):
        response = await gateway.request(method, "/v1/shape", headers={"Origin": APP})
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]
        assert "Vary" not in response.headers


def test_a_star_echoes_any_origin_and_never_itself() -> None:
    settings = Settings(cors_origins=("*",))
    assert allowed_origin(settings, "https://any.example") == "https://any.example"
    assert allowed_origin(settings, None) is None


def test_only_a_listed_origin_exactly_as_written_is_allowed() -> None:
    settings = Settings(cors_origins=(APP,))
    assert allowed_origin(settings, APP) == APP
    assert allowed_origin(settings, APP + ".evil.example") is None
    assert allowed_origin(settings, "http://app.example") is None
    assert allowed_origin(Settings(), APP) is None
