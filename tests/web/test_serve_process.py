"""`shape-gateway serve` as ops run it: a real process, real signals, real exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.factories import SECRET, SHIPPED_RULES
from tests.gateway import ADMIN_TOKEN

ENV = {
    **os.environ,
    "JWT_SECRET": SECRET,
    "LOG_FORMAT": "json",
    "ELECTRIC_URL": "http://127.0.0.1:9",
    "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
}


async def run_serve(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", *args,
        env=env or ENV, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def listening_url(process: asyncio.subprocess.Process) -> str:
    assert process.stderr is not None
    async with asyncio.timeout(10):
        while True:
            line = await process.stderr.readline()
            assert line, "serve exited before listening"
            event = json.loads(line)
            if event["event"] == "gateway_listening":
                return str(event["url"]).replace("0.0.0.0", "127.0.0.1")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str, Path]]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(SHIPPED_RULES.read_text())
    process = await run_serve("--host", "127.0.0.1", "--port", "0", "--rules", str(rules))
    url = await listening_url(process)
    yield process, url, rules
    if process.returncode is None:
        process.kill()
        await process.wait()


async def active_rules(url: str) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/admin/rules", headers=headers) as response,
    ):
        body: dict[str, object] = await response.json()
        return body


async def test_sighup_reloads_the_rules(
    served: tuple[asyncio.subprocess.Process, str, Path],
) -> None:
    process, url, rules = served
    before = (await active_rules(url))["active"]
    rules.write_text(
        rules.read_text().replace(
            "roles: [admin, manager, member]", "roles: [admin, manager, member, guest]"
        )
    )
    process.send_signal(signal.SIGHUP)
    async with asyncio.timeout(5):
        while (await active_rules(url))["active"] == before:  # noqa: ASYNC110 - polling another process
            await asyncio.sleep(0.05)


async def test_sigterm_stops_cleanly_and_quickly(
    served: tuple[asyncio.subprocess.Process, str, Path],
) -> None:
    process, _, _ = served
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(5):
        assert await process.wait() == 0


async def test_serve_without_a_key_source_exits_with_advice() -> None:
    env = {k: v for k, v in ENV.items() if not k.startswith("JWT_")}
    process = await run_serve("--rules", str(SHIPPED_RULES), env=env)
    _, err = await process.communicate()
    assert process.returncode == 2
    assert b"JWT_SECRET" in err


async def test_serve_with_broken_rules_exits_listing_the_problems(tmp_path: Path) -> None:
    rules = tmp_path / "bad.yaml"
    rules.write_text("version: 1\nroles: [a]\nshapes:\n  x: {table: t, allow: [a]}\n")
    process = await run_serve("--rules", str(rules))
    _, err = await process.communicate()
    assert process.returncode == 1
    assert f"{rules}:4: shapes.x: role 'a' would read".encode() in err
