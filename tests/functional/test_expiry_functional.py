"""A token's expiry ends what it opened: at `exp` + JWT_LEEWAY a held long-poll is answered 401
`token_expired`, an SSE stream and the event feed end cleanly, the upstream request is cancelled
at once, and the audit line says why."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import MutableMapping
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.factories import make_token
from tests.functional.conftest import ElectricFactory, World
from tests.functional.test_shape_functional import fetch, gateway_for, sync_to_live
from tests.gateway import GatewayFactory

pytestmark = [pytest.mark.postgres]
LEEWAY = 1  # JWT_LEEWAY for these tests, in seconds


def short_lived(seconds: int = 2, **claims: Any) -> tuple[str, int]:
    """A token of alice's ending `seconds` from now (and `LEEWAY` later for the gateway)."""
    expires = int(time.time()) + seconds
    token = make_token(sub="alice", tid="acme", role="member", exp=expires, **claims)
    return token, expires + LEEWAY


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
    """One HTTP/1.1 answer with a Content-Length: its status and JSON body (the connection
    may stay open after it: aiohttp lingers for the rest of an unread request body)."""
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, json.loads(await reader.readexactly(length))


def audit_lines(logs: list[MutableMapping[str, Any]], path: str) -> list[tuple[str, str, int]]:
    return [(e["decision"], e["reason"], e["status"]) for e in logs
            if e["event"] == "shape_request" and e["path"] == path]  # fmt: skip


async def test_expired_token_ends_a_held_long_poll_with_401_and_cancels_its_upstream(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory
) -> None:
    electric = await electric_factory(long_poll_timeout=20.0)
    gateway = await gateway_for(gateway_factory, world, electric, jwt_leeway=LEEWAY)
    token, ends = short_lived()
    handle, offset, cursor = await sync_to_live(gateway, token)
    live = {"table": "tasks", "offset": offset, "handle": handle, "live": "true", "cursor": cursor}
    with capture_logs() as logs:
        poll = asyncio.ensure_future(fetch(gateway, live, token))  # noqa: TID251 - a test
        await electric.state.wait_for(lambda s: s.held_requests == 1)
        status, headers, body = await asyncio.wait_for(poll, timeout=ends - time.time() + 2)
        answered = time.time()
        await electric.state.wait_for(lambda s: s.cancelled_requests == 1, within=1.0)
    assert (status, body["error"]) == (401, "token_expired")
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert ends <= answered < ends + 1.0
    assert electric.state.stats.held_requests == 0
    assert audit_lines(logs, "/v1/shape")[-1] == ("allowed", "stopped:token_expired", 401)


@pytest.mark.electric_feature("sse")
async def test_expired_token_closes_an_sse_stream_cleanly_and_cancels_its_upstream(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory
) -> None:
    electric = await electric_factory(sse_timeout=30.0, sse_keepalive=10.0)
    gateway = await gateway_for(gateway_factory, world, electric, jwt_leeway=LEEWAY)
    token, ends = short_lived()
    handle, offset, cursor = await sync_to_live(gateway, token)
    sse = {"table": "tasks", "offset": offset, "handle": handle, "live": "true",
           "live_sse": "true", "cursor": cursor}  # fmt: skip
    with capture_logs() as logs:
        async with gateway.shape(sse, token=token) as stream:
            assert stream.status == 200
            await electric.state.wait_for(lambda s: s.held_requests == 1)
            async with asyncio.timeout(ends - time.time() + 2):
                rest = await stream.content.read()  # a clean end of the chunked body
            ended = time.time()
        await electric.state.wait_for(lambda s: s.cancelled_requests == 1, within=1.0)
    assert ends <= ended < ends + 1.0
    assert b"HTTP/1.1" not in rest
    assert audit_lines(logs, "/v1/shape")[-1] == ("allowed", "stopped:token_expired", 200)


async def test_expired_token_ends_its_event_feed(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(jwt_leeway=LEEWAY)
    token, ends = short_lived()
    with capture_logs() as logs:
        async with gateway.request("GET", "/v1/events", token=token) as feed:
            assert await feed.content.readline() == b": connected\n"
            async with asyncio.timeout(ends - time.time() + 2):
                await feed.read()  # ends, cleanly
            ended = time.time()
    assert ends <= ended < ends + 1.0
    assert audit_lines(logs, "/v1/events") == [("allowed", "stopped:token_expired", 200)]


async def test_a_token_expiring_while_its_subset_body_is_sent_is_refused_as_expired(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory
) -> None:
    electric = await electric_factory()
    gateway = await gateway_for(gateway_factory, world, electric, jwt_leeway=LEEWAY)
    token, ends = short_lived()
    body = json.dumps({"where": "status = 'open'"}).encode()
    head = (
        f"POST /v1/shape?table=tasks&offset=-1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    seen = len(electric.state.requests)
    reader, writer = await asyncio.open_connection(gateway.url.host, gateway.url.port)
    writer.write(head + body[:5])
    await writer.drain()
    async with asyncio.timeout(ends - time.time() + 2):
        status, answer = await read_answer(reader)
    writer.close()
    assert status == 401
    assert answer["error"] == "token_expired"
    assert len(electric.state.requests) == seen  # Electric was never asked
