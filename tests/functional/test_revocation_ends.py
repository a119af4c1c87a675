"""What a revocation ends besides held shapes: a request still sending its body (refused with
the revocation's code, Electric never asked), and the caller's event feed, once it has delivered
the event that ended the caller's access; never a feed whose access is intact now."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.factories import make_token
from tests.functional.conftest import Electric, World
from tests.functional.test_expiry_functional import audit_lines, read_answer
from tests.functional.test_revocation_functional import eventually, read_events, revoke
from tests.functional.test_shape_functional import gateway_for
from tests.gateway import Gateway, GatewayFactory

BEFORE = int(time.time()) - 5  # tokens issued before every event of these tests
ALICE = make_token(sub="alice", tid="acme", role="member", iat=BEFORE,
                   tenants={"acme": "member", "globex": "member"})  # fmt: skip


async def send_half(gateway: Gateway, path: str, body: bytes, token: str = ALICE) -> tuple[
    asyncio.StreamReader, asyncio.StreamWriter
]:  # fmt: skip
    """A POST whose headers and first half of the body are sent; the rest is the caller's."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection(gateway.url.host, gateway.url.port)
    writer.write(head + body[: len(body) // 2])
    await writer.drain()
    return reader, writer


async def finish(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rest: bytes
) -> tuple[int, dict[str, Any]]:
    writer.write(rest)
    await writer.drain()
    async with asyncio.timeout(5):
        answer = await read_answer(reader)
    writer.close()
    return answer


@pytest.mark.postgres
async def test_a_subset_post_revoked_while_its_body_arrives_is_refused_and_never_reaches_electric(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await gateway_for(gateway_factory, world, electric)
    body = json.dumps({"where": "status = 'open'", "limit": 10}).encode()
    with capture_logs() as logs:
        reader, writer = await send_half(gateway, "/v1/shape?table=tasks&offset=-1", body)
        await revoke(gateway, type="membership.revoked", user="alice", tenant="acme")
        await eventually(gateway, ALICE, (403, "access_revoked"))  # applied (a GET is refused)
        status, answer = await finish(reader, writer, body[len(body) // 2 :])
    assert (status, answer["error"]) == (403, "access_revoked")
    assert [r.method for r in electric.state.requests if r.method == "POST"] == []
    assert audit_lines(logs, "/v1/shape")[0] == ("allowed", "stopped:access_revoked", 403)


async def test_audit_events_revoked_while_their_body_arrives_are_refused_and_not_recorded(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory()
    body = json.dumps([{"id": "e1", "action": "update", "table": "tasks"}]).encode()
    with capture_logs() as logs:
        reader, writer = await send_half(gateway, "/v1/audit-events", body)
        await revoke(gateway, type="session.revoked", user="alice")
        await eventually(gateway, ALICE, (401, "session_revoked"))
        status, answer = await finish(reader, writer, body[len(body) // 2 :])
    assert (status, answer["error"]) == (401, "session_revoked")
    assert [e for e in logs if e["event"] == "client_audit_event"] == []
    assert audit_lines(logs, "/v1/audit-events") == [("allowed", "stopped:session_revoked", 401)]


ENDING = [
    ({"type": "membership.revoked", "user": "alice", "tenant": "acme"}, "access_revoked"),
    ({"type": "tenant.suspended", "tenant": "acme"}, "tenant_suspended"),
    ({"type": "session.revoked", "user": "alice"}, "session_revoked"),
    ({"type": "role.changed", "user": "alice", "tenant": "acme", "role": "admin"}, "token_stale"),
]  # fmt: skip


@pytest.mark.parametrize(("event", "code"), ENDING, ids=[e["type"] for e, _ in ENDING])
async def test_the_feed_delivers_the_event_that_ends_the_callers_access_then_ends(
    gateway_factory: GatewayFactory, event: dict[str, str], code: str
) -> None:
    gateway = await gateway_factory()
    with capture_logs() as logs:
        async with gateway.request("GET", "/v1/events", token=ALICE) as feed:
            assert await feed.content.readline() == b": connected\n"
            await revoke(gateway, **event)
            (got,) = await read_events(feed, 1)
            async with asyncio.timeout(2):
                rest = await feed.read()  # then the stream ends, cleanly
    assert got["event"] == event["type"]
    assert rest == b""
    assert audit_lines(logs, "/v1/events") == [("allowed", f"stopped:{code}", 200)]


async def test_an_event_that_leaves_the_callers_access_intact_is_delivered_and_the_feed_stays(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory()
    async with gateway.request("GET", "/v1/events", token=ALICE) as feed:  # active in acme
        await revoke(gateway, type="membership.revoked", user="alice", tenant="globex")
        await revoke(gateway, type="session.revoked", user="alice", session="another-device")
        got = await read_events(feed, 2)
        await revoke(gateway, type="tenant.suspended", tenant="globex")
        (last,) = await read_events(feed, 1)
    assert [e["event"] for e in got] == ["membership.revoked", "session.revoked"]
    assert last["event"] == "tenant.suspended"


async def test_a_replayed_suspension_and_reinstatement_do_not_end_a_feed_whose_access_is_intact(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory()
    await revoke(gateway, type="tenant.suspended", tenant="acme")
    await revoke(gateway, type="tenant.reinstated", tenant="acme")
    headers = {"Last-Event-ID": "0-0"}  # replay everything retained
    async with gateway.request("GET", "/v1/events", token=ALICE, headers=headers) as feed:
        assert feed.status == 200
        replayed = await read_events(feed, 2)
        await revoke(gateway, type="membership.revoked", user="alice", tenant="globex")
        (live,) = await read_events(feed, 1)  # still open: this one arrives too
    assert [e["event"] for e in replayed] == ["tenant.suspended", "tenant.reinstated"]
    assert live["event"] == "membership.revoked"
