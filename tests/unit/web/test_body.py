"""Request bodies on a real aiohttp server: read whole and parsed, refused when too large
(declared or not), not JSON or nested too deeply, and refused with 408 when they stop coming or
trickle slower than the minimum rate, so no client holds a connection with a body it never
sends."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.errors import Code, Refusal
from gateway.settings import Settings
from gateway.web.body import MIN_BODY_RATE, read_json
from gateway.web.keys import SETTINGS

Client = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
Gateway = TestClient[web.Request, web.Application]
LIMIT = 10_000
GRACE = 1  # GATEWAY_HEADER_TIMEOUT, seconds


async def parse(request: web.Request) -> web.Response:
    try:
        return web.json_response({"body": await read_json(request, LIMIT, "a JSON object")})
    except Refusal as refusal:
        return web.json_response(refusal.as_json(), status=refusal.status)


async def gateway(aiohttp_client: Client) -> Gateway:
    app = web.Application()
    app[SETTINGS] = Settings(header_timeout=GRACE)
    app.router.add_post("/body", parse)
    return await aiohttp_client(app)


async def posted(client: Gateway, data: object) -> tuple[int, dict[str, object]]:
    response = await client.post("/body", data=data)
    return response.status, await response.json()


async def test_a_body_within_the_limit_is_parsed(aiohttp_client: Client) -> None:
    client = await gateway(aiohttp_client)
    assert await posted(client, b'{"a": [1, 2]}') == (200, {"body": {"a": [1, 2]}})


async def test_a_body_over_the_limit_is_refused_whether_declared_or_streamed(
    aiohttp_client: Client,
) -> None:
    client = await gateway(aiohttp_client)

    async def undeclared() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b" " * (LIMIT // 2)

    for data in (b" " * (LIMIT + 1), undeclared()):
        status, body = await posted(client, data)
        assert (status, body["error"]) == (400, Code.INVALID_PARAMETER.value)
        assert body["message"] == f"the body must be at most {LIMIT} bytes"


async def test_a_body_exactly_at_the_limit_is_read(aiohttp_client: Client) -> None:
    client = await gateway(aiohttp_client)
    document = json.dumps({"pad": "x" * (LIMIT - 11)}).encode()
    assert len(document) == LIMIT
    assert (await posted(client, document))[0] == 200


async def test_a_body_that_is_not_json_is_refused_naming_what_was_expected(
    aiohttp_client: Client,
) -> None:
    client = await gateway(aiohttp_client)
    for data in (b"{not json", b"\xff\xfe", b""):
        assert await posted(client, data) == (
            400,
            {"error": "invalid_parameter", "message": "the body must be a JSON object"},
        )


async def test_json_nested_too_deeply_is_refused_not_a_crash(aiohttp_client: Client) -> None:
    client = await gateway(aiohttp_client)
    status, body = await posted(client, b"[" * LIMIT)
    assert (status, body["message"]) == (400, "the body is nested too deeply; send a JSON object")


async def test_a_declared_body_that_never_comes_is_refused_after_the_header_timeout(
    aiohttp_client: Client,
) -> None:
    client = await gateway(aiohttp_client)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    started = time.monotonic()
    writer.write(b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{")
    async with asyncio.timeout(10):
        head = await reader.readuntil(b"\r\n\r\n")
    waited = time.monotonic() - started
    writer.close()
    assert head.startswith(b"HTTP/1.1 408 ")
    assert GRACE * 0.9 <= waited < GRACE * 3


async def test_a_body_trickling_below_the_minimum_rate_is_refused(aiohttp_client: Client) -> None:
    client = await gateway(aiohttp_client)
    sent = 0

    async def trickle() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b"["
        for _ in range(40):  # a byte every 0.1 s: each piece in time, the whole far behind
            await asyncio.sleep(0.1)
            sent += 1
            yield b" "

    started = time.monotonic()
    status, body = await posted(client, trickle())
    assert (status, body["error"]) == (408, "request_timeout")
    assert f"at least {MIN_BODY_RATE} bytes a second" in str(body["message"])
    assert time.monotonic() - started < 3
    assert sent < 30  # refused once behind, not after the client finished


async def test_a_body_arriving_in_timely_pieces_above_the_rate_is_read(
    aiohttp_client: Client,
) -> None:
    client = await gateway(aiohttp_client)

    async def pieces() -> AsyncIterator[bytes]:
        yield b'{"a": "'
        for _ in range(3):
            await asyncio.sleep(0.2)
            yield b"x" * 200
        yield b'"}'

    status, body = await posted(client, pieces())
    assert status == 200
    assert body == {"body": {"a": "x" * 600}}


async def test_a_declared_length_over_the_limit_is_refused_before_any_of_it_is_read(
    aiohttp_client: Client,
) -> None:
    client = await gateway(aiohttp_client)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n")
    async with asyncio.timeout(GRACE / 2):  # not the 408 the header timeout would bring
        head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    assert head.startswith(b"HTTP/1.1 400 ")


async def test_a_pause_longer_than_the_header_timeout_is_refused_even_ahead_of_the_rate(
    aiohttp_client: Client,
) -> None:
    client = await gateway(aiohttp_client)

    async def pausing() -> AsyncIterator[bytes]:
        yield b" " * 8000  # ahead of the rate by seconds
        await asyncio.sleep(GRACE * 2.5)
        yield b"[]"

    started = time.monotonic()
    status, body = await posted(client, pausing())
    assert (status, body["error"]) == (408, "request_timeout")
    assert time.monotonic() - started < GRACE * 2.5 + 1
