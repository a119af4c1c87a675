"""The real `@electric-sql/client` ShapeStream syncs through the gateway, changing only its URL
and an `Authorization` header: all a client changes (README, docs/http-api.md).

Each test runs Electric (the imitation, `python -m electric_imitation`, once per imitated version;
or a real server, see tests/electric_targets.py) and `shape-gateway serve` as real processes on
loopback, and drives the pinned client with `node tests/client/sync.mjs`, reading
its events (requests, responses, changes, controls, onError calls, warnings) as JSON lines.
Needs Node.js and `npm ci --prefix tests/client`: skipped locally without them, failed under CI.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Final

import aiohttp
import pytest

from tests.client.conftest import (
    MEMBER_COLUMNS,
    TASK_ROWS,
    ClientFactory,
    Event,
    Predicate,
    Stack,
    SyncClient,
    Tasks,
)
from tests.factories import make_token

pytestmark = [pytest.mark.node, pytest.mark.postgres, pytest.mark.across_electric_versions]

ADMIN_COLUMNS: Final = (*MEMBER_COLUMNS, "salary")
DELIVERY_BOUND: Final = 2.0  # seconds from COMMIT to the change reaching the client
FOREIGN_KEY: Final = "a-different-hs256-key-of-at-least-32-bytes"


def alice_token(**claims: Any) -> str:
    """alice, a member of acme: rows 1 and 3 are hers (row 4 is hers too, but globex's)."""
    return make_token(sub="alice", tid="acme", role="member", **claims)


def control(name: str) -> Predicate:
    return lambda event: event["kind"] == "control" and event["control"] == name


def change_of(key: str) -> Predicate:
    return lambda event: event["kind"] == "change" and event["key"] == key


def live_request(event: Event) -> bool:
    return event["kind"] == "request" and bool(event["live"])


def of_kind(events: Iterable[Event], kind: str) -> list[Event]:
    return [event for event in events if event["kind"] == kind]


def synced_rows(events: Iterable[Event]) -> dict[str, dict[str, Any]]:
    """The rows a subscriber holds after `events`, as Electric's Shape materialises them."""
    rows: dict[str, dict[str, Any]] = {}
    for event in events:
        if event["kind"] == "control" and event["control"] == "must-refetch":
            rows.clear()
        elif event["kind"] == "change" and event["op"] == "delete":
            rows.pop(event["key"], None)
        elif event["kind"] == "change":
            rows[event["key"]] = {**rows.get(event["key"], {}), **event["value"]}
    return rows


def expected_rows(
    tasks: Tasks, ids: Iterable[int], columns: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """TASK_ROWS as the client parses them (typed by electric-schema), limited to `columns`."""
    by_id = {row[0]: row for row in TASK_ROWS}
    names = ("id", "tenant_id", "project_id", "title", "status", "assigned_to")
    rows = {}
    for task_id in ids:
        full = {**dict(zip(names, by_id[task_id], strict=True)), "salary": 1000}
        rows[tasks.key(task_id)] = {column: full[column] for column in columns}
    return rows


async def synced(client: SyncClient) -> dict[str, dict[str, Any]]:
    """Wait for the next `up-to-date` and return what the client holds then."""
    await client.wait_for("up-to-date", control("up-to-date"))
    return synced_rows(client.events[: client.position])


async def receive_insert(client: SyncClient, tasks: Tasks, task_id: int) -> Event:
    """Insert alice's acme row `task_id` and return its change, asserting the delivery bound."""
    tasks.insert(task_id, "acme", "alice", title=f"task {task_id}")
    committed = time.monotonic()
    change = await client.wait_for(f"insert of row {task_id}", change_of(tasks.key(task_id)))
    latency = time.monotonic() - committed
    assert latency <= DELIVERY_BOUND, f"row {task_id} took {latency:.2f} s to arrive"
    assert change["op"] == "insert"
    return change


async def test_member_syncs_only_its_assigned_rows_of_its_tenant_with_restricted_columns(
    stack: Stack, start_client: ClientFactory
) -> None:
    client = await start_client(alice_token())

    rows = await synced(client)

    assert rows == expected_rows(stack.tasks, [1, 3], MEMBER_COLUMNS)
    assert not of_kind(client.events, "error")
    assert not of_kind(client.events, "warn")


async def test_admins_sync_every_row_of_their_own_tenant_and_none_of_the_other(
    stack: Stack, start_client: ClientFactory
) -> None:
    acme = await start_client(make_token(sub="dana", tid="acme", role="admin"))
    globex = await start_client(make_token(sub="erin", tid="globex", role="admin"))

    acme_rows, globex_rows = await synced(acme), await synced(globex)

    assert acme_rows == expected_rows(stack.tasks, [1, 2, 3], ADMIN_COLUMNS)
    assert globex_rows == expected_rows(stack.tasks, [4, 5], ADMIN_COLUMNS)


async def test_inserted_row_arrives_within_two_seconds_and_other_callers_rows_never_do(
    stack: Stack, start_client: ClientFactory
) -> None:
    tasks = stack.tasks
    client = await start_client(alice_token())
    await synced(client)
    await client.wait_for("a live request", live_request)
    mark = client.position

    # Committed first, so a leak would arrive no later than alice's own row (commit order).
    tasks.insert(10, "globex", "alice", title="globex row assigned to alice")
    tasks.insert(11, "acme", "bob", title="bob's acme row")
    change = await receive_insert(client, tasks, 12)
    await client.wait_for("up-to-date after the insert", control("up-to-date"))

    assert change["value"] == {
        "id": 12, "tenant_id": "acme", "project_id": 1, "title": "task 12", "status": "open",
        "assigned_to": "alice",
    }  # fmt: skip
    assert [event["key"] for event in of_kind(client.events[mark:], "change")] == [tasks.key(12)]


async def test_client_refetches_after_a_409_rotation_and_keeps_syncing(
    stack: Stack, start_client: ClientFactory
) -> None:
    tasks = stack.tasks
    client = await start_client(alice_token())
    await synced(client)
    old_handle = (await client.wait_for("a live request", live_request))["handle"]

    rotated = await stack.rotate()

    assert [rotation["old_handle"] for rotation in rotated] == [old_handle]
    new_handle = rotated[0]["new_handle"]
    conflict = await client.wait_for(
        "the 409", lambda e: e["kind"] == "response" and e["status"] == 409
    )
    after_conflict = client.position
    await client.wait_for("must-refetch", control("must-refetch"))
    assert await synced(client) == expected_rows(tasks, [1, 3], MEMBER_COLUMNS)
    refetched = client.events[after_conflict:]
    refetches = [e for e in of_kind(refetched, "request") if e["offset"] == "-1"]
    assert refetches, "the client must start over from offset -1"
    # The 409's electric-handle reached the client. Electric 1.0.10 names the *old* handle in a
    # 409 that ends a held poll, so there one more 409 points the client at the new shape.
    assert conflict["handle"] in (old_handle, new_handle)
    assert refetches[0]["handle"] == conflict["handle"]
    assert refetches[-1]["handle"] == new_handle
    settled = of_kind(client.events[client.events.index(refetches[-1]) :], "response")
    assert settled
    assert all(e["status"] == 200 and e["handle"] == new_handle for e in settled)
    assert not of_kind(client.events, "warn")  # e.g. "proxy or CDN stripping required headers"

    await receive_insert(client, tasks, 12)


async def test_bad_tokens_reach_on_error_as_json_codes_and_a_fresh_token_recovers(
    stack: Stack, start_client: ClientFactory
) -> None:
    now = int(time.time())
    client = await start_client(alice_token(iat=now - 600, exp=now - 60))

    expired = await client.wait_for("onError", lambda e: e["kind"] == "error")
    assert (expired["status"], expired["body"]["error"]) == (401, "token_expired")
    assert expired["body"]["message"]
    await client.send_token(alice_token(key=FOREIGN_KEY))
    forged = await client.wait_for("onError", lambda e: e["kind"] == "error")
    assert (forged["status"], forged["body"]["error"]) == (401, "invalid_token")
    await client.send_token(alice_token())

    assert await synced(client) == expected_rows(stack.tasks, [1, 3], MEMBER_COLUMNS)
    assert len(of_kind(client.events, "error")) == 2
    await receive_insert(client, stack.tasks, 12)


async def test_token_expiring_during_live_sync_is_refreshed_without_starting_over(
    stack: Stack, start_client: ClientFactory
) -> None:
    now = int(time.time())
    # Long enough to sync first even on a slow machine; the gateway's leeway is 0.
    client = await start_client(alice_token(iat=now, exp=now + 5))
    rows = await synced(client)
    live = await client.wait_for("a live request", live_request)

    expired = await client.wait_for("onError", lambda e: e["kind"] == "error", within=15)
    assert (expired["status"], expired["body"]["error"]) == (401, "token_expired")
    mark = client.position
    assert of_kind(client.events[:mark], "request")[-1]["live"], "expired while live"
    await client.send_token(alice_token())
    resumed = await client.wait_for("the retried request", lambda e: e["kind"] == "request")

    assert resumed["live"], "the retry continues the live sync"
    assert resumed["offset"] != "-1"
    assert resumed["handle"] == live["handle"]
    change = await receive_insert(client, stack.tasks, 12)
    since = client.events[mark:]
    assert not [e for e in of_kind(since, "control") if e["control"] == "must-refetch"]
    assert [e["key"] for e in of_kind(since, "change")] == [stack.tasks.key(12)]
    assert synced_rows(client.events) == {**rows, stack.tasks.key(12): change["value"]}


@pytest.mark.electric_feature("sse")
async def test_live_sse_streams_changes_without_falling_back_to_long_polling(
    stack: Stack, start_client: ClientFactory
) -> None:
    client = await start_client(alice_token(), liveSse=True)
    assert await synced(client) == expected_rows(stack.tasks, [1, 3], MEMBER_COLUMNS)
    first_live = await client.wait_for("a live request", live_request)
    assert first_live["sse"]
    opened = await client.wait_for(
        "the SSE response", lambda e: e["kind"] == "response" and e["n"] == first_live["n"]
    )
    assert opened["status"] == 200
    streaming = client.position

    await receive_insert(client, stack.tasks, 12)
    assert not of_kind(client.events[streaming : client.position], "request"), "not over SSE"
    await client.observe(5.0)

    live_requests = [event for event in client.events if live_request(event)]
    assert all(event["sse"] for event in live_requests), "fell back to long-polling"
    assert len(live_requests) <= 2, "SSE streams through the gateway must stay open"
    assert not of_kind(client.events, "warn")  # "SSE connections are closing immediately..."
    assert not of_kind(client.events, "fetch_failed")
    assert not of_kind(client.events, "error")
    upstream_live = [
        dict(request["query"])
        for request in await stack.upstream_requests()
        if ["live", "true"] in request["query"]
    ]
    assert upstream_live
    assert all(query.get("live_sse") == "true" for query in upstream_live)
    assert (await stack.electric_stats())["held_requests"] >= 1, "the stream is still open"


async def test_app_stops_and_clears_a_revoked_tenants_shape_on_the_event(
    start_client: ClientFactory, stack: Stack
) -> None:
    """The README's client pattern, run for real: the app follows /v1/events beside its
    ShapeStream; on membership.revoked for its tenant it stops the shape and deletes the rows,
    and the gateway refuses the revoked token from then on."""
    token = alice_token(iat=int(time.time()) - 5)
    client = await start_client(token, events=True, tenant="acme")
    await client.wait_for("feed connected", lambda e: e["kind"] == "feed" and e["status"] == 200)
    await client.wait_for("up-to-date", control("up-to-date"))
    await stack.revoke(type="membership.revoked", user="alice", tenant="acme")
    revoked = await client.wait_for("the revocation event", lambda e: e["kind"] == "revocation")
    assert (revoked["type"], revoked["tenant"]) == ("membership.revoked", "acme")
    cleared = await client.wait_for("local data cleared", lambda e: e["kind"] == "cleared")
    assert cleared["rows"] == 0
    mark = client.position
    await client.observe(3.0)
    assert not of_kind(client.events[mark:], "request"), "the stopped shape kept fetching"
    url = f"{stack.gateway}/v1/shape?table=tasks&offset=-1"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        assert response.status == 403
        assert (await response.json())["error"] == "access_revoked"
