"""Operating the gateway: hot reload, graceful shutdown, and staying clean under load."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import aiohttp
import pytest

from electric_imitation import Fault
from tests.factories import make_token
from tests.functional.conftest import ELECTRIC_SECRET, Electric, ElectricFactory, World
from tests.functional.test_collapse_functional import until, waiting
from tests.functional.test_shape_functional import fetch, sync_to_live
from tests.gateway import ADMIN_TOKEN, Gateway, GatewayFactory

pytestmark = pytest.mark.postgres

ALICE = make_token(sub="alice", tid="acme", role="member")
ADMIN = make_token(sub="root", tid="acme", role="admin")


async def gateway_for(factory: GatewayFactory, world: World, electric: Electric) -> Gateway:
    return await factory(upstream=str(electric.url), rules=world.rules,
                         electric_secret=ELECTRIC_SECRET)  # fmt: skip


async def status_within(gateway: Gateway, token: str, expected: int, seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        async with gateway.shape({"table": "tasks", "offset": "-1"}, token=token) as response:
            if response.status == expected:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"still {response.status}, wanted {expected}")
        await asyncio.sleep(0.1)


async def admin_rules(gateway: Gateway) -> dict[str, object]:
    async with gateway.request("GET", "/admin/rules", token=ADMIN_TOKEN) as response:
        assert response.status == 200
        body: dict[str, object] = await response.json()
        return body


async def test_rules_edit_is_picked_up_and_a_broken_edit_keeps_the_last_good_rules(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await gateway_for(gateway_factory, world, electric)
    await status_within(gateway, ALICE, 200)
    without_member = world.rules.replace(
        '      member:\n        where: "tenant_id = :tenant AND assigned_to = :user"\n'
        "        columns: [id, tenant_id, project_id, title, status, assigned_to]\n",
        "",
    )
    # An editor's save: write a temp file, rename it over the original.
    temp = gateway.rules_path.with_suffix(".tmp")
    temp.write_text(without_member)
    os.replace(temp, gateway.rules_path)
    await status_within(gateway, ALICE, 403)

    gateway.rules_path.write_text(without_member.replace(":tenant", ":tenat"))
    await asyncio.sleep(1.5)
    body = await admin_rules(gateway)
    assert "unknown placeholder :tenat" in str(body["last_reload_error"])
    await status_within(gateway, ADMIN, 200)  # still served, by the last good rules
    await status_within(gateway, ALICE, 403)


async def test_kubernetes_configmap_symlink_swap_is_picked_up(
    gateway_factory: GatewayFactory, world: World, electric: Electric, tmp_path: Path
) -> None:
    first, second = tmp_path / "..2026_1", tmp_path / "..2026_2"
    first.mkdir()
    second.mkdir()
    (first / "rules.yaml").write_text(world.rules)
    (second / "rules.yaml").write_text(world.rules.replace("allow:\n      admin: {}", "allow:"))
    (tmp_path / "..data").symlink_to(first.name)
    link = tmp_path / "rules.yaml"
    link.symlink_to("..data/rules.yaml")
    gateway = await gateway_factory(
        upstream=str(electric.url),
        rules=world.rules,
        electric_secret=ELECTRIC_SECRET,
        rules_path=str(link),
    )
    await status_within(gateway, ADMIN, 200)
    (tmp_path / "..data_tmp").symlink_to(second.name)
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")  # what kubelet does
    await status_within(gateway, ADMIN, 403)


async def test_admin_reload_answers_with_the_result(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await gateway_for(gateway_factory, world, electric)
    gateway.rules_path.write_text("version: 1\nroles: []\n")
    async with gateway.request("POST", "/admin/reload", token=ADMIN_TOKEN) as response:
        assert response.status == 422
        body = await response.json()
        assert body["ok"] is False
        assert any("roles" in p for p in body["problems"])
    async with gateway.request("POST", "/admin/reload", token=ALICE) as response:
        assert response.status == 401  # a user token is not the admin token


@pytest.mark.imitation_only("fault injection")
async def test_shutdown_ends_held_long_polls_at_once_and_lets_snapshots_finish(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory
) -> None:
    electric = await electric_factory(long_poll_timeout=20.0)
    gateway = await gateway_for(gateway_factory, world, electric)
    handle, offset, cursor = await sync_to_live(gateway, ALICE)
    live = {"table": "tasks", "offset": offset, "handle": handle, "live": "true", "cursor": cursor}
    async with asyncio.TaskGroup() as group:
        polls = [group.create_task(fetch(gateway, live, ALICE)) for _ in range(3)]
        await until(lambda: waiting(gateway) == 3)  # one upstream poll, collapsed
        await electric.state.wait_for(lambda s: s.held_requests == 1)
        electric.state.inject(Fault("delay", seconds=1.0))
        fresh = {"table": "tasks", "offset": "-1", "cache-buster": "1"}  # not the one lingering
        snapshot = group.create_task(fetch(gateway, fresh, ALICE))
        await electric.state.wait_for(lambda s: s.active_requests == 2)
        started = time.monotonic()
        stopping = group.create_task(gateway.runner.cleanup())
        results = [await poll for poll in polls]
        ended_after = time.monotonic() - started
        status, _, body = await snapshot
        await stopping
    assert ended_after < 1.0
    assert {s for s, _, _ in results} == {502}
    assert all(b["error"] == "upstream_unavailable" for _, _, b in results)
    assert status == 200
    assert [m["value"]["id"] for m in body if "key" in m] == ["1", "3"]
    await electric.state.wait_for(lambda s: s.held_requests == 0, within=1.0)


async def raw_status(gateway: Gateway, request: bytes) -> int:
    assert gateway.url.host is not None
    reader, writer = await asyncio.open_connection(gateway.url.host, gateway.url.port)
    writer.write(request)
    await writer.drain()
    line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    return int(line.split()[1])


async def test_malformed_requests_get_clean_4xx_while_300_long_polls_are_held(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory
) -> None:
    electric = await electric_factory(long_poll_timeout=15.0)
    gateway = await gateway_for(gateway_factory, world, electric)
    handle, offset, cursor = await sync_to_live(gateway, ADMIN)
    live = {"table": "tasks", "offset": offset, "handle": handle, "live": "true", "cursor": cursor}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session, asyncio.TaskGroup() as group:
        held_gateway = Gateway(gateway.url, gateway.runner, gateway.rules_path, session)
        admins = [make_token(sub=f"admin-{n}", tid="acme", role="admin") for n in range(300)]
        polls = [group.create_task(fetch(held_gateway, live, token)) for token in admins]
        await until(lambda: waiting(gateway) == 300, within=20)
        await electric.state.wait_for(lambda s: s.held_requests == 1)  # identical: collapsed

        base = f"Authorization: Bearer {ADMIN}\r\nHost: x\r\n".encode()
        line = b"GET /v1/shape?table=tasks&offset=-1"
        malformed = [
            b"GET /v1/shape?table=%zz&offset=-1 HTTP/1.1\r\n" + base + b"\r\n",
            line + b"&" + b"a" * 65536 + b" HTTP/1.1\r\n" + base + b"\r\n",
            line + b" HTTP/1.1\r\n" + base + b"Bad Header Line\r\n\r\n",
            line + b" HTTP/1.1\r\n" + base + b"X-Big: " + b"b" * 70000 + b"\r\n\r\n",
            b"\x16\x03\x01\x02\x00garbage\r\n\r\n",
            b"POST /v1/shape?table=tasks&offset=-1 HTTP/1.1\r\n" + base
            + b"Content-Type: application/json\r\nContent-Length: 5\r\n\r\n{bad}",
            line + b"&where=%27%00 HTTP/1.1\r\n" + base + b"\r\n",
        ]  # fmt: skip
        statuses = [await raw_status(gateway, request) for request in malformed]
        assert all(400 <= s < 500 for s in statuses), statuses

        world.execute("INSERT INTO {schema}.tasks VALUES (50, 'acme', 1, 'wake', 'open', 'bob')")
        results = [await poll for poll in polls]
    assert {status for status, _, _ in results} == {200}
    assert all(any(m.get("key") for m in body) for _, _, body in results)
