"""The headers every answer gets, on a real aiohttp server: caching is private and revalidated
(never stored for an error or a `no-store`), `Vary` names what picks the identity (the cookie
too when it authenticates) beside the handler's own, CORS is applied, and the request id of
the audit record is sent back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.audit.records import AuditRecord
from gateway.settings import Settings
from gateway.web.keys import AUDIT, SETTINGS
from gateway.web.middleware.response_headers import REQUEST_ID, finish_headers

Client = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
Gateway = TestClient[web.Request, web.Application]


async def answer(request: web.Request) -> web.Response:
    """Status and Cache-Control as the query asks, with a Vary of its own (as Electric's)."""
    headers = {"Vary": "Accept-Encoding"}
    if "cache" in request.query:
        headers["Cache-Control"] = request.query["cache"]
    return web.Response(status=int(request.query.get("status", "200")), headers=headers)


@web.middleware
async def record(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if "audited" in request.query:
        request[AUDIT] = AuditRecord("req-42", request.method, request.path)
    return await handler(request)


async def gateway(aiohttp_client: Client, settings: Settings) -> Gateway:
    app = web.Application(middlewares=[record])
    app[SETTINGS] = settings
    app.router.add_get("/v1/shape", answer)
    app.on_response_prepare.append(finish_headers)
    return await aiohttp_client(app)


async def test_a_cacheable_answer_is_private_and_revalidated(aiohttp_client: Client) -> None:
    client = await gateway(aiohttp_client, Settings())
    response = await client.get("/v1/shape", params={"cache": "public, max-age=60"})
    assert response.headers["Cache-Control"] == "private, no-cache"


async def test_an_error_an_answer_without_policy_and_no_store_are_never_stored(
    aiohttp_client: Client,
) -> None:
    client = await gateway(aiohttp_client, Settings())
    for params in ({"cache": "public, max-age=60", "status": "400"}, {}, {"cache": "no-store"}):
        response = await client.get("/v1/shape", params=params)
        assert "no-store" in response.headers["Cache-Control"], params
        assert "public" not in response.headers["Cache-Control"]


async def test_answers_vary_on_the_credentials_and_keep_the_handlers_vary(
    aiohttp_client: Client,
) -> None:
    client = await gateway(aiohttp_client, Settings())
    response = await client.get("/v1/shape")
    assert response.headers["Vary"] == "Accept-Encoding, Authorization, X-Tenant-Id"
    cookie = await gateway(aiohttp_client, Settings(auth_cookie="session"))
    response = await cookie.get("/v1/shape")
    assert response.headers["Vary"] == "Accept-Encoding, Authorization, X-Tenant-Id, Cookie"


async def test_cors_is_applied_to_every_answer(aiohttp_client: Client) -> None:
    client = await gateway(aiohttp_client, Settings(cors_origins=("https://app.example",)))
    response = await client.get(
        "/v1/shape", params={"status": "404"}, headers={"Origin": "https://app.example"}
    )
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert response.headers["Vary"].endswith(", Origin")


async def test_the_audit_records_request_id_is_sent_back_and_none_without_a_record(
    aiohttp_client: Client,
) -> None:
    client = await gateway(aiohttp_client, Settings())
    assert (await client.get("/v1/shape", params={"audited": ""})).headers[REQUEST_ID] == "req-42"
    assert REQUEST_ID not in (await client.get("/v1/shape")).headers
