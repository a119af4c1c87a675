"""Revocation across replicas sharing one real Redis: refusals, cut-off within a second, the
event feed, late replicas and both fail modes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from tests.factories import make_token
from tests.functional.conftest import (
    ELECTRIC_SECRET,
    Electric,
    ElectricFactory,
    World,
    serve_process,
)
from tests.functional.test_shape_functional import fetch, sync_to_live
from tests.gateway import ADMIN_TOKEN, Gateway, GatewayFactory

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.across_electric_versions]
SNAPSHOT = {"table": "tasks", "offset": "-1"}


async def replica(
    factory: GatewayFactory, world: World, electric: Electric, redis_url: str, prefix: str,
    **overrides: Any,
) -> Gateway:  # fmt: skip
    gateway = await factory(
        upstream=str(electric.url), rules=world.rules, electric_secret=ELECTRIC_SECRET,
        redis_url=redis_url, redis_prefix=prefix, **overrides,
    )  # fmt: skip
    await ready(gateway)
    return gateway


async def ready(gateway: Gateway, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while True:
        async with gateway.request("GET", "/readyz", token=None) as response:
            if response.status == 200:
                return
        assert time.monotonic() < deadline, "replica never became ready"
        await asyncio.sleep(0.05)


async def revoke(gateway: Gateway, **event: str) -> tuple[str, int]:
    async with gateway.request("POST", "/admin/revocations", token=ADMIN_TOKEN, json=event) as r:
        assert r.status == 202, await r.text()
        body = await r.json()
    return body["id"], body["event"]["at"]


async def status_of(gateway: Gateway, token: str) -> tuple[int, str | None]:
    async with gateway.shape(SNAPSHOT, token=token) as response:
        body = await response.json()
        return response.status, body.get("error") if isinstance(body, dict) else None


async def eventually(gateway: Gateway, token: str, expected: tuple[int, str | None],
                     within: float = 1.0) -> None:  # fmt: skip
    deadline = time.monotonic() + within
    while (got := await status_of(gateway, token)) != expected:
        assert time.monotonic() < deadline, f"{got} after {within}s, wanted {expected}"
        await asyncio.sleep(0.02)


EVENTS = [
    ({"type": "membership.revoked", "user": "alice", "tenant": "acme"}, (403, "access_revoked")),
    ({"type": "role.changed", "user": "alice", "tenant": "acme", "role": "admin"},
     (401, "token_stale")),
    ({"type": "session.revoked", "user": "alice"}, (401, "session_revoked")),
    ({"type": "session.revoked", "user": "alice", "session": "s-1"}, (401, "session_revoked")),
]  # fmt: skip


@pytest.mark.parametrize(("event", "refused"), EVENTS, ids=[e["type"] for e, _ in EVENTS])
async def test_event_posted_on_one_replica_refuses_old_tokens_on_another(
    gateway_factory: GatewayFactory, world: World, electric: Electric, redis_url: str,
    redis_prefix: str, event: dict[str, str], refused: tuple[int, str],
) -> None:  # fmt: skip
    a = await replica(gateway_factory, world, electric, redis_url, redis_prefix)
    b = await replica(gateway_factory, world, electric, redis_url, redis_prefix)
    old = make_token(sub="alice", tid="acme", role="member", sid="s-1")
    other_session = make_token(sub="alice", tid="acme", role="member", sid="s-2")
    bob = make_token(sub="bob", tid="acme", role="member")
    assert await status_of(b, old) == (200, None)
    _, at = await revoke(a, **event)
    await eventually(b, old, refused)
    await eventually(a, old, refused)
    assert await status_of(b, bob) == (200, None)
    expected_other = refused if "session" not in event else (200, None)
    assert await status_of(b, other_session) == expected_other
    fresh = make_token(sub="alice", tid="acme", role="member", sid="s-1", iat=at + 1)
    assert await status_of(b, fresh) == (200, None)


async def test_suspension_refuses_even_new_tokens_until_reinstated(
    gateway_factory: GatewayFactory, world: World, electric: Electric, redis_url: str,
    redis_prefix: str,
) -> None:  # fmt: skip
    a = await replica(gateway_factory, world, electric, redis_url, redis_prefix)
    b = await replica(gateway_factory, world, electric, redis_url, redis_prefix)
    _, at = await revoke(a, type="tenant.suspended", tenant="acme")
    new = make_token(sub="carol", tid="acme", role="admin", iat=at + 1)
    await eventually(b, new, (403, "tenant_suspended"))
    assert await status_of(b, make_token(sub="g", tid="globex", role="admin")) == (200, None)
    await revoke(b, type="tenant.reinstated", tenant="acme")
    await eventually(a, new, (200, None))


@pytest.mark.electric_feature("sse")
async def test_held_long_poll_and_sse_on_another_replica_are_cut_within_a_second(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory,
    redis_url: str, redis_prefix: str,
) -> None:  # fmt: skip
    electric = await electric_factory(long_poll_timeout=20.0, sse_timeout=30.0)
    a = await replica(gateway_factory, world, electric, redis_url, redis_prefix)
    b = await replica(gateway_factory, world, electric, redis_url, redis_prefix)
    alice = make_token(sub="alice", tid="acme", role="member")
    bob = make_token(sub="bob", tid="acme", role="member")
    handle, offset, cursor = await sync_to_live(b, alice)
    live = {"table": "tasks", "offset": offset, "handle": handle, "live": "true", "cursor": cursor}
    sse = {**live, "live_sse": "true"}
    bob_handle, bob_offset, _ = await sync_to_live(b, bob)
    bob_live = {**live, "handle": bob_handle, "offset": bob_offset}
    async with asyncio.TaskGroup() as group, b.shape(sse, token=alice) as stream:
        poll = group.create_task(fetch(b, live, alice))
        bobs = group.create_task(fetch(b, bob_live, bob))
        await electric.state.wait_for(lambda s: s.held_requests == 3)
        started = time.monotonic()
        await revoke(a, type="membership.revoked", user="alice", tenant="acme")
        status, _, body = await poll
        assert time.monotonic() - started < 1.0
        assert (status, body["error"]) == (403, "access_revoked")
        async with asyncio.timeout(1.0):
            await stream.content.read()  # the SSE stream ends
        assert time.monotonic() - started < 1.0
        assert not bobs.done()  # bob was not revoked: his long-poll is still held
        bobs.cancel()
    await electric.state.wait_for(lambda s: s.held_requests == 0, within=1.0)
    async with b.request("GET", "/metrics", token=None) as response:
        metrics = await response.text()
    assert "shape_gateway_streams_cut_total 2.0" in metrics
    assert "shape_gateway_revocation_lag_seconds_count 1.0" in metrics


async def test_replica_started_after_the_event_enforces_it(
    gateway_factory: GatewayFactory, world: World, electric: Electric, redis_url: str,
    redis_prefix: str,
) -> None:  # fmt: skip
    a = await replica(gateway_factory, world, electric, redis_url, redis_prefix)
    await revoke(a, type="membership.revoked", user="alice", tenant="acme")
    late = await replica(gateway_factory, world, electric, redis_url, redis_prefix)
    alice = make_token(sub="alice", tid="acme", role="member", iat=int(time.time()) - 5)
    assert await status_of(late, alice) == (403, "access_revoked")


async def read_events(stream: Any, count: int, within: float = 2.0) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async with asyncio.timeout(within):
        while len(events) < count:
            raw = await stream.content.readline()
            assert raw, f"the feed ended after {len(events)} of {count} events"
            line = raw.decode().rstrip("\n")
            if line.startswith("id: "):
                current["id"] = line[4:]
            elif line.startswith("event: "):
                current["event"] = line[7:]
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
            elif line == "" and current:
                events.append(current)
                current = {}
    return events


async def test_event_feed_reaches_only_the_users_it_concerns_and_replays_after_reconnect(
    gateway_factory: GatewayFactory, world: World, electric: Electric, redis_url: str,
    redis_prefix: str,
) -> None:  # fmt: skip
    a = await replica(gateway_factory, world, electric, redis_url, redis_prefix)
    b = await replica(gateway_factory, world, electric, redis_url, redis_prefix)
    alice = make_token(sub="alice", tid="acme", role="member")
    bob = make_token(sub="bob", tid="acme", role="member")
    carol = make_token(sub="carol", tid="globex", role="member")
    async with (
        b.request("GET", "/v1/events", token=alice) as alice_feed,
        b.request("GET", "/v1/events", token=bob) as bob_feed,
        b.request("GET", "/v1/events", token=carol) as carol_feed,
    ):
        assert alice_feed.headers["Content-Type"] == "text/event-stream"
        first, _ = await revoke(a, type="membership.revoked", user="alice", tenant="acme")
        await revoke(a, type="tenant.suspended", tenant="acme")
        await revoke(a, type="session.revoked", user="carol")
        got_alice = await read_events(alice_feed, 1)
        got_bob = await read_events(bob_feed, 1)
        got_carol = await read_events(carol_feed, 1)
        # Each of these events ended its caller's access: delivered, then the feed ended.
        for feed in (alice_feed, bob_feed, carol_feed):
            assert await feed.content.read() == b""
    assert [e["event"] for e in got_alice] == ["membership.revoked"]
    assert got_alice[0]["id"] == first
    assert got_alice[0]["data"] == {"id": first, "type": "membership.revoked", "user": "alice",
                                    "tenant": "acme", "at": got_alice[0]["data"]["at"]}  # fmt: skip
    assert [e["event"] for e in got_bob] == ["tenant.suspended"]
    assert [e["event"] for e in got_carol] == ["session.revoked"]

    # Reconnecting with the first id replays what came after it, on the other replica too
    # (alice's old token is revoked in acme: she comes back active in another tenant).
    alice_again = make_token(sub="alice", tid="globex", role="member",
                             tenants={"globex": "member", "acme": "member"})  # fmt: skip
    headers = {"Last-Event-ID": first}
    async with a.request("GET", "/v1/events", token=alice_again, headers=headers) as again:
        replayed = await read_events(again, 1)
    assert [e["event"] for e in replayed] == ["tenant.suspended"]


async def test_memberships_list_the_tokens_tenants_minus_revocations(
    gateway_factory: GatewayFactory, world: World, electric: Electric, redis_url: str,
    redis_prefix: str,
) -> None:  # fmt: skip
    a = await replica(gateway_factory, world, electric, redis_url, redis_prefix)
    tenants = {"acme": "member", "globex": "admin", "initech": "member"}
    token = make_token(sub="alice", tid="acme", role="member", tenants=tenants)
    await revoke(a, type="membership.revoked", user="alice", tenant="globex")
    await revoke(a, type="role.changed", user="alice", tenant="initech", role="admin")
    async with a.request("GET", "/v1/memberships", token=token) as response:
        body = await response.json()
    assert body == {
        "user": "alice",
        "memberships": [
            {"tenant": "acme", "role": "member", "active": True, "status": "ok"},
            {"tenant": "initech", "role": "member", "active": False, "status": "stale"},
        ],
    }


async def test_admin_revocations_need_the_admin_token_and_a_valid_event(
    gateway_factory: GatewayFactory, world: World, electric: Electric, redis_url: str,
    redis_prefix: str,
) -> None:  # fmt: skip
    a = await replica(gateway_factory, world, electric, redis_url, redis_prefix)
    event = {"type": "tenant.suspended", "tenant": "acme"}
    async with a.request("POST", "/admin/revocations", token=None, json=event) as response:
        assert response.status == 401
    async with a.request("POST", "/admin/revocations", json=event) as response:
        assert response.status == 401  # a user's token is not the admin token
    bad = {"type": "tenant.suspended"}
    async with a.request("POST", "/admin/revocations", token=ADMIN_TOKEN, json=bad) as response:
        assert response.status == 400
        assert "needs `tenant`" in (await response.json())["message"]


@pytest.mark.parametrize(("mode", "expected"), [("closed", 503), ("open", 200)])
async def test_unreachable_redis_fails_closed_or_open_and_is_not_ready(
    gateway_factory: GatewayFactory, world: World, electric: Electric, mode: str, expected: int
) -> None:
    gateway = await gateway_factory(
        upstream=str(electric.url), rules=world.rules, electric_secret=ELECTRIC_SECRET,
        redis_url="redis://127.0.0.1:9/0", fail_mode=mode,
    )  # fmt: skip
    async with gateway.shape(SNAPSHOT, token=make_token()) as response:
        assert response.status == expected
        if expected == 503:
            assert (await response.json())["error"] == "revocation_state_stale"
    async with gateway.request("GET", "/readyz", token=None) as response:
        assert response.status == 503
        assert await response.json() == {"status": "not_ready"}  # nothing more to strangers
    async with gateway.request("GET", "/metrics", token=None) as response:
        assert "shape_gateway_revocation_state_fresh 0.0" in await response.text()


async def test_cli_revoke_publishes_through_a_gateway_or_redis(
    gateway_factory: GatewayFactory, world: World, electric: Electric, redis_url: str,
    redis_prefix: str,
) -> None:  # fmt: skip
    a = await replica(gateway_factory, world, electric, redis_url, redis_prefix)
    alice = make_token(sub="alice", tid="acme", role="member", iat=int(time.time()) - 5)
    carol = make_token(sub="carol", tid="acme", role="admin", iat=int(time.time()) - 5)
    env = {**os.environ, "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN}
    via_gateway = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "revoke", "membership.revoked", "--user", "alice",
        "--tenant", "acme", "--gateway", str(a.url), env=env, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await via_gateway.communicate()
    assert via_gateway.returncode == 0
    assert out.decode().strip().count("-") == 1  # a stream id
    await eventually(a, alice, (403, "access_revoked"))

    env = {**os.environ, "REDIS_URL": redis_url, "GATEWAY_REDIS_PREFIX": redis_prefix}
    via_redis = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "revoke", "role.changed", "--user", "carol",
        "--tenant", "acme", "--role", "member", env=env, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await via_redis.communicate()
    assert via_redis.returncode == 0
    await eventually(a, carol, (401, "token_stale"))


async def test_cli_revoke_refuses_an_incomplete_event() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "revoke", "role.changed", "--user", "carol",
        env={**os.environ, "REDIS_URL": "redis://127.0.0.1:9/0"}, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await process.communicate()
    assert process.returncode == 2
    assert b"role.changed needs `tenant`" in err


async def test_revocation_posted_to_one_process_cuts_a_long_poll_held_by_another_process(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory,
    redis_url: str, redis_prefix: str, tmp_path: Path,
) -> None:  # fmt: skip
    electric = await electric_factory(long_poll_timeout=20.0)
    rules = tmp_path / "rules.yaml"
    rules.write_text(world.rules)
    process, url = await serve_process(world, electric, redis_url, redis_prefix, str(rules))
    try:
        a = await replica(gateway_factory, world, electric, redis_url, redis_prefix)
        other = Gateway(URL(url), a.runner, a.rules_path, a.session)
        await ready(other)
        alice = make_token(sub="alice", tid="acme", role="member")
        handle, offset, cursor = await sync_to_live(other, alice)
        live = {"table": "tasks", "offset": offset, "handle": handle, "live": "true",
                "cursor": cursor}  # fmt: skip
        async with asyncio.TaskGroup() as group:
            poll = group.create_task(fetch(other, live, alice))
            await electric.state.wait_for(lambda s: s.held_requests == 1)
            started = time.monotonic()
            await revoke(a, type="session.revoked", user="alice")
            status, _, body = await poll
        assert time.monotonic() - started < 1.0
        assert (status, body["error"]) == (401, "session_revoked")
    finally:
        process.terminate()
        await process.wait()
