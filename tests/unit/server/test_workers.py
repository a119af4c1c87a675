"""`serve --workers N`: N processes share the port (SO_REUSEPORT), each a full replica: both
serve, a revocation reaches both through Redis, and SIGTERM drains both."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.settings import SettingsError, load_settings
from tests.factories import SECRET, SHIPPED_RULES, make_token
from tests.gateway import ADMIN_TOKEN

pytestmark = pytest.mark.redis


def test_several_workers_need_redis_and_a_fixed_port() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"GATEWAY_WORKERS": "2", "GATEWAY_PORT": "0"})
    problems = " ".join(caught.value.problems)
    assert "need REDIS_URL" in problems
    assert "fixed GATEWAY_PORT" in problems


class Served:
    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process, self.url = process, url
        self.lines: list[dict[str, Any]] = []

    async def follow(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                continue

    def workers_of(self, **fields: Any) -> set[int]:
        matching = (line for line in self.lines if all(line.get(k) == v for k, v in fields.items()))
        return {line["worker"] for line in matching if "worker" in line}


@pytest.fixture
async def served(tmp_path: Path, redis_url: str) -> AsyncIterator[Served]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(SHIPPED_RULES.read_text())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "JWT_SECRET": SECRET, "LOG_FORMAT": "json", "REDIS_URL": redis_url,
           "GATEWAY_REDIS_PREFIX": f"gw-workers-{uuid.uuid4().hex[:8]}",
           "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN, "ELECTRIC_URL": "http://127.0.0.1:9"}  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--workers", "2", "--host", "127.0.0.1",
        "--port", str(port), "--rules", str(rules), env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    result = Served(process, f"http://127.0.0.1:{port}")
    reader = asyncio.ensure_future(result.follow())  # noqa: TID251 - a test's own reader
    async with asyncio.timeout(20):
        while result.workers_of(event="gateway_listening") != {0, 1}:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    yield result
    if process.returncode is None:
        process.kill()  # the workers die with it (PR_SET_PDEATHSIG)
        await process.wait()
    reader.cancel()


async def get(url: str, token: str) -> int:
    # A new connection each time, so the kernel spreads them over the workers.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        headers = {"Authorization": f"Bearer {token}"}
        async with session.get(f"{url}/v1/memberships", headers=headers) as response:
            return response.status


async def test_both_workers_serve_and_a_revocation_reaches_both(served: Served) -> None:
    old = make_token(sub="alice", iat=int(time.time()) - 5)
    async with asyncio.timeout(20):
        while served.workers_of(event="shape_request", status=200) != {0, 1}:
            assert await get(served.url, old) in (200, 503)  # 503 while a view catches up
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{served.url}/admin/revocations",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            json={"type": "session.revoked", "user": "alice"},
        ) as response,
    ):
        assert response.status == 202
    async with asyncio.timeout(20):
        while served.workers_of(event="shape_request", reason="session_revoked") != {0, 1}:
            assert await get(served.url, old) in (200, 401)
    for _ in range(20):  # and every request now, wherever it lands
        assert await get(served.url, old) == 401


async def test_sigterm_drains_both_workers_and_the_parent_exits_cleanly(served: Served) -> None:
    feeds = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        for n in range(6):
            headers = {"Authorization": f"Bearer {make_token(sub=f'u{n}')}"}
            feed = await session.get(f"{served.url}/v1/events", headers=headers)
            assert await feed.content.readline() == b": connected\n"
            feeds.append(feed)
        served.process.send_signal(signal.SIGTERM)
        for feed in feeds:  # each stream is ended cleanly, not cut
            assert b"HTTP/1.1" not in await feed.read()
    assert await asyncio.wait_for(served.process.wait(), 20) == 0
    assert served.workers_of(event="gateway_stopped") == {0, 1}
