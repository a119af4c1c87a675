"""`shape-gateway revoke --gateway URL` during an incident: a gateway that cannot be reached is
retried, with a backoff, for `--wait` seconds, then reported in one line (exit 1, nothing
published); one that comes up meanwhile takes the event."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest

from tests.functional.enforcement import refused_everywhere
from tests.functional.test_revocation_functional import ready
from tests.gateway import ADMIN_TOKEN, GatewayFactory
from tests.services import free_port

pytestmark = [pytest.mark.redis]


async def start_revoke(url: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "revoke", "session.revoked", "--user", "erin",
        "--gateway", url, *args, env={**os.environ, "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_revoke_retries_an_unreachable_gateway_for_its_wait_then_prints_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    process = await start_revoke(url, "--wait", "2")
    out, err = await asyncio.wait_for(process.communicate(), 30)
    took = time.monotonic() - started
    print(
        f"\nrevoke --gateway {url} --wait 2: exit {process.returncode} after {took:.1f} s: {err!r}"
    )
    assert (process.returncode, out) == (1, b"")
    assert err.decode().count("\n") == 1
    assert err.startswith(b"revoke: the gateway at " + url.encode() + b" could not be reached")
    assert err.rstrip().endswith(b"; nothing was published")
    assert 2.0 <= took < 12.0  # its wait, plus starting Python on a loaded machine


async def test_revoke_publishes_through_a_gateway_that_comes_up_while_it_retries(
    gateway_factory: GatewayFactory, redis_url: str, redis_prefix: str
) -> None:
    port = free_port()
    process = await start_revoke(f"http://127.0.0.1:{port}", "--wait", "30")
    await asyncio.sleep(5.0)  # it started and found nothing there
    still_trying = process.returncode is None
    assert still_trying
    gateway = await gateway_factory(port=port, redis_url=redis_url, redis_prefix=redis_prefix)
    await ready(gateway)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err
    assert out.decode().strip().count("-") == 1  # a stream id
    await refused_everywhere([gateway], ["erin"], within=2)
