"""`shape-gateway serve` as ops run it: a real process, real signals, real exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from tests.factories import SECRET, SHIPPED_RULES
from tests.gateway import ADMIN_TOKEN
from tests.unit.web.raw import raw_request, send_raw

ENV = {
    **os.environ,
    "JWT_SECRET": SECRET,
    "LOG_FORMAT": "json",
    "ELECTRIC_URL": "http://127.0.0.1:9",
    "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
}


async def run_serve(
    *args: str, env: dict[str, str] | None = None, soft_file_limit: int | None = None
) -> asyncio.subprocess.Process:
    def lower_file_limit() -> None:
        if soft_file_limit is not None:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft_file_limit, hard))

    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", *args,
        env=env or ENV, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        preexec_fn=lower_file_limit,
    )  # fmt: skip


async def listening_event(process: asyncio.subprocess.Process) -> dict[str, object]:
    assert process.stderr is not None
    async with asyncio.timeout(10):
        while True:
            line = await process.stderr.readline()
            assert line, "serve exited before listening"
            event: dict[str, object] = json.loads(line)
            if event["event"] == "gateway_listening":
                return event


async def listening_url(process: asyncio.subprocess.Process) -> str:
    return str((await listening_event(process))["url"]).replace("0.0.0.0", "127.0.0.1")


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


async def test_serve_raises_a_low_soft_file_limit_to_the_hard_one(tmp_path: Path) -> None:
    """A soft limit of 256 would cap the replica at 64 connections; serve lifts it to the hard."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip("the hard file limit here is no higher than the soft one this test sets")
    process = await run_serve(
        "--host", "127.0.0.1", "--port", "0", "--rules", str(SHIPPED_RULES), soft_file_limit=256
    )
    try:
        event = await listening_event(process)
        soft, _ = resource.prlimit(process.pid, resource.RLIMIT_NOFILE)
        expected = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        assert soft == expected
        assert event["max_connections"] == (expected - 128) // 2
    finally:
        process.kill()
        await process.wait()


async def test_a_port_in_use_is_one_clear_line_and_nothing_after_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await run_serve(
            "--host", "127.0.0.1", "--port", str(port), "--rules", str(SHIPPED_RULES)
        )
        _, err = await process.communicate()
    assert process.returncode == 2
    lines = err.decode().splitlines()
    assert lines == [
        f"serve: cannot listen on 127.0.0.1:{port}: the address is already in use; stop what "
        "listens there, or choose another port (--port, GATEWAY_PORT)"
    ]


async def test_a_port_in_use_stops_several_workers_before_any_starts() -> None:
    env = {**ENV, "REDIS_URL": "redis://127.0.0.1:9/0"}  # required by --workers; never reached
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await run_serve(
            "--host", "127.0.0.1", "--port", str(port), "--rules", str(SHIPPED_RULES),
            "--workers", "2", env=env,
        )  # fmt: skip
        async with asyncio.timeout(20):
            _, err = await process.communicate()
    assert process.returncode == 2
    assert err.decode().splitlines() == [
        f"serve: cannot listen on 127.0.0.1:{port}: the address is already in use; stop what "
        "listens there, or choose another port (--port, GATEWAY_PORT)"
    ]


async def test_a_bad_port_a_short_secret_and_unreadable_rules_are_all_reported_in_one_run(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nowhere.yaml"
    env = {**ENV, "GATEWAY_PORT": "99999", "JWT_SECRET": "too-short"}
    process = await run_serve("--rules", str(missing), env=env)
    _, err = await process.communicate()
    assert process.returncode == 2
    lines = err.decode().splitlines()
    assert lines[0] == "configuration: GATEWAY_PORT='99999': must be a whole number from 0 to 65535"
    assert lines[1].startswith("configuration: JWT_SECRET must be at least 32 bytes")
    assert lines[2] == f"serve: the rules in {missing} do not load:"
    assert lines[3].startswith(f"{missing}:1: (file): cannot be read: [Errno 2]")
    assert len(lines) == 4


async def test_no_log_line_carries_a_cookie_or_authorization_value_even_of_malformed_requests(
    served: tuple[asyncio.subprocess.Process, str, Path],
) -> None:
    """aiohttp's parser logs the bytes of the header it chokes on: an opaque session cookie or
    a Basic credential (neither JWT-shaped) must not reach the log through it, nor through the
    requests the gateway itself refuses."""
    process, url, _ = served
    target = URL(url)
    secret = b"opaque-session-value-0123"
    for request in (
        raw_request("GET", "/v1/shape", [(b"Cookie", b"sg=" + secret + b"\x01")]),
        raw_request("GET", "/v1/shape", [(b"Authorization", b"Basic " + secret + b"\x7f")]),
        raw_request("GET", "/v1/shape", [(b"Cookie", b"sg=" + secret + b"A" * 17_000)]),
        raw_request("GET", "/v1/shape", [(b"Cookie", b"sg=" + secret)]),
        raw_request("GET", "/v1/shape", [(b"Authorization", b"Bearer " + secret)]),
    ):
        assert (await send_raw(target, request)).status in (400, 401)
    process.send_signal(signal.SIGTERM)
    _, err = await process.communicate()
    assert b"malformed_request: Invalid header value char (header Cookie)" in err
    assert b"malformed_request: Invalid header value char (header Authorization)" in err
    assert secret not in err
