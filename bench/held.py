"""Held long-polls through the gateway: how much memory each costs it while the upstream holds
it, whether they are really held, and whether the gateway is healthy once they are released.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from bench import procfs
from bench.load import HoldResult, HoldSpec, write_spec
from bench.processes import output_of, spawn, stop
from bench.report import Hold
from bench.services import LONG_POLL_TIMEOUT, SHAPE, TENANT, Stack
from bench.targets import forget_requests, get_body, held_requests, live_url_at_head


async def wait_until_held(stack: Stack, count: int, within: float) -> tuple[int, float]:
    started = time.monotonic()
    held = 0
    while time.monotonic() - started < within:
        held = await held_requests(stack)
        if held >= count:
            break
        await asyncio.sleep(0.1)
    return held, time.monotonic() - started


async def sample_rss(pid: int, samples: int = 5, interval: float = 0.2) -> int:
    """The largest of a few VmRSS readings (KiB)."""
    largest = 0
    for _ in range(samples):
        largest = max(largest, procfs.rss_kib(pid))
        await asyncio.sleep(interval)
    return largest


async def hold_long_polls(
    stack: Stack, count: int, encoding: str, cycle: int, rss_start: int
) -> Hold:
    """Open `count` live requests at the head, measure while the upstream holds them, then wake
    them all with one insert and check the gateway is healthy afterwards."""
    await forget_requests(stack)
    live_url = await live_url_at_head(stack)
    tokens = [stack.token(f"held-{i}") for i in range(count)]  # one client each
    spec = HoldSpec(
        url=live_url,
        headers={"Accept-Encoding": encoding},
        tokens=tokens,
        request_timeout=LONG_POLL_TIMEOUT + 30,
    )
    spec_file = write_spec(stack.workdir / "load-held.json", spec)
    gateway = stack.gateway.pid
    rss_before, fds_before = await sample_rss(gateway, samples=3), procfs.open_fds(gateway)
    overflows = procfs.listen_overflows()
    process = await spawn(
        [sys.executable, "-m", "bench.load", str(spec_file)], None, asyncio.subprocess.PIPE, None
    )
    try:
        # Held polls end by themselves after LONG_POLL_TIMEOUT: measure well before that.
        held, seconds = await wait_until_held(stack, count, within=LONG_POLL_TIMEOUT - 8)
        await asyncio.sleep(0.5)
        rss_held, fds_held = await sample_rss(gateway), procfs.open_fds(gateway)
        overflows = procfs.listen_overflows() - overflows
        held = min(held, await held_requests(stack))
        woken_at = time.time()
        stack.schema.insert_task(10_000_000 + cycle, TENANT)  # grows the shape: all polls wake
        result = HoldResult.from_json(json.loads(await output_of(process, LONG_POLL_TIMEOUT + 40)))
    finally:
        await stop(process)
    await asyncio.sleep(1.0)
    healthy, health = await check_health(stack)
    return Hold(
        cycle=cycle,
        requested=count,
        held=held,
        seconds_to_hold=seconds,
        rss_start_kib=rss_start,
        rss_before_kib=rss_before,
        rss_held_kib=rss_held,
        rss_after_kib=await sample_rss(gateway, samples=3) if stack.gateway.running else 0,
        fds_before=fds_before,
        fds_held=fds_held,
        listen_overflows=overflows,
        wake_seconds=result.last_done - woken_at if result.last_done else 0.0,
        result=result,
        healthy=healthy,
        health=health,
    )


async def check_health(stack: Stack) -> tuple[bool, str]:
    """Alive, /healthz answers, a shape request is served, nothing is left held upstream."""
    if not stack.gateway.running:
        return False, f"exited with {stack.gateway.process.returncode}"
    status, _, _ = await get_body(stack, f"{stack.gateway.url}/healthz", {})
    shape = f"{stack.gateway.url}/v1/shape?table={SHAPE}&offset=-1"
    shape_status, _, _ = await get_body(stack, shape, {"Authorization": f"Bearer {stack.token()}"})
    left = await held_requests(stack)
    detail = f"healthz {status}, shape request {shape_status}, {left} still held upstream"
    return (status, shape_status, left) == (200, 200, 0), detail
