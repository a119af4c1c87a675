"""/v1/events is admitted like a shape request: a revoked caller cannot open it, it is charged
to the request budget, it holds a live slot while open; it replays what the caller missed and ends
the replay with a `: replayed N` comment before anything live; it ends cleanly when the gateway
shuts down."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
from structlog.testing import capture_logs

from tests.factories import RULES_YAML, make_token
from tests.functional.test_revocation_functional import read_events
from tests.gateway import ADMIN_TOKEN, Gateway, GatewayFactory

ONE_LIVE = (
    RULES_YAML
    + """\
limits:
  default: {requests_per_minute: 1000, tenant_requests_per_minute: 1000,
            live_connections_per_user: 1}
"""
)
THREE_REQUESTS = (
    RULES_YAML
    + """\
limits:
  default: {requests_per_minute: 3, tenant_requests_per_minute: 1000}
"""
)


async def publish(gateway: Gateway, **event: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with gateway.request(
        "POST", "/admin/revocations", token=None, headers=headers, json=event
    ) as response:
        assert response.status == 202
        body: dict[str, Any] = await response.json()
        return body


async def status_of_feed(gateway: Gateway, token: str) -> tuple[int, str | None]:
    async with gateway.request("GET", "/v1/events", token=token) as response:
        if response.status == 200:
            return 200, None
        return response.status, (await response.json())["error"]


async def test_a_revoked_session_or_suspended_tenant_cannot_open_the_feed(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory()
    before = int(time.time()) - 5
    await publish(gateway, type="session.revoked", user="alice")
    await publish(gateway, type="tenant.suspended", tenant="globex")
    assert await status_of_feed(gateway, make_token(iat=before)) == (401, "session_revoked")
    carol = make_token(sub="carol", tid="globex", iat=before)
    assert await status_of_feed(gateway, carol) == (403, "tenant_suspended")


async def test_the_feed_holds_a_live_slot_while_open(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(rules=ONE_LIVE)
    token = make_token()
    async with gateway.request("GET", "/v1/events", token=token) as feed:
        assert feed.status == 200
        assert await status_of_feed(gateway, token) == (429, "too_many_live_connections")
    async with asyncio.timeout(5):
        while await status_of_feed(gateway, token) != (200, None):  # noqa: ASYNC110 - over HTTP
            await asyncio.sleep(0.05)  # the slot returns when the server sees the close


async def test_the_feed_is_charged_to_the_request_budget(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(rules=THREE_REQUESTS)
    token = make_token()
    for _ in range(3):
        async with gateway.request("GET", "/v1/memberships", token=token) as response:
            assert response.status == 200
    assert await status_of_feed(gateway, token) == (429, "rate_limited")


async def test_without_last_event_id_only_events_newer_than_the_token_are_replayed(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory()
    event = (await publish(gateway, type="tenant.reinstated", tenant="acme"))["event"]
    older = make_token(iat=event["at"] - 5)
    newer = make_token(iat=event["at"] + 1)  # a token issued after the event already knows
    async with gateway.request("GET", "/v1/events", token=older) as feed:
        assert [e["event"] for e in await read_events(feed, 1)] == ["tenant.reinstated"]
    async with gateway.request("GET", "/v1/events", token=newer) as feed:
        assert await feed.content.readline() == b": connected\n"
        try:
            extra = await read_events(feed, 1, within=0.5)
        except TimeoutError:
            extra = []
        assert extra == []
    headers = {"Last-Event-ID": "0-0"}  # asked for everything: replayed whatever the token
    async with gateway.request("GET", "/v1/events", token=newer, headers=headers) as feed:
        assert [e["event"] for e in await read_events(feed, 1)] == ["tenant.reinstated"]


async def test_a_malformed_last_event_id_is_refused(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory()
    headers = {"Last-Event-ID": "yesterday"}
    async with gateway.request("GET", "/v1/events", headers=headers) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_parameter"


async def test_a_feed_ended_by_shutdown_ends_its_stream_cleanly(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory(grace=1.0)
    with capture_logs() as logs:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                gateway.url.with_path("/v1/events"),
                headers={"Authorization": f"Bearer {make_token()}"},
            ) as feed,
        ):
            assert await feed.content.readline() == b": connected\n"
            shutdown = asyncio.ensure_future(gateway.runner.cleanup())  # noqa: TID251 - test
            rest = await feed.read()  # a clean end of the chunked body, not a broken one
            await shutdown
    assert b"HTTP/1.1" not in rest  # no second response written into the first
    lines = [e for e in logs if e["event"] == "shape_request" and e["path"] == "/v1/events"]
    assert [(e["decision"], e["reason"], e["status"]) for e in lines] == [
        ("allowed", "stopped:upstream_unavailable", 200)
    ]


async def read_lines(feed: aiohttp.ClientResponse, count: int, within: float = 2.0) -> list[str]:
    """The feed's next `count` lines."""
    lines: list[str] = []
    async with asyncio.timeout(within):
        while len(lines) < count:
            raw = await feed.content.readline()
            assert raw, f"the feed ended after {lines}"
            lines.append(raw.decode().rstrip("\n"))
    return lines


def sse(event: dict[str, Any]) -> list[str]:
    data = json.dumps(event, separators=(",", ":"))
    return [f"id: {event['id']}", f"event: {event['type']}", f"data: {data}", ""]


async def test_the_replay_ends_with_a_comment_before_any_live_event(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory()
    token = make_token(iat=int(time.time()) - 5)
    suspended = (await publish(gateway, type="tenant.suspended", tenant="acme"))["event"]
    reinstated = (await publish(gateway, type="tenant.reinstated", tenant="acme"))["event"]
    # Newer than the token: both replayed, then the comment, then what is published live.
    async with gateway.request("GET", "/v1/events", token=token) as feed:
        head = await read_lines(feed, 12)
        revoked = await publish(gateway, type="membership.revoked", user="alice", tenant="globex")
        live = await read_lines(feed, 4)
    assert head == [": connected", "", *sse(suspended), *sse(reinstated), ": replayed 2", ""]
    assert live == sse(revoked["event"])
    # After Last-Event-ID: what came after it; nothing to replay: the comment all the same.
    headers = {"Last-Event-ID": reinstated["id"]}
    async with gateway.request("GET", "/v1/events", token=token, headers=headers) as feed:
        assert await read_lines(feed, 8) == [
            ": connected", "", *sse(revoked["event"]), ": replayed 1", ""
        ]  # fmt: skip
    async with gateway.request("GET", "/v1/events", token=make_token()) as feed:
        assert await read_lines(feed, 4) == [": connected", "", ": replayed 0", ""]
