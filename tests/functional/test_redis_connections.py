"""A replica's Redis connections stay few whatever its request concurrency: measured on a real
`shape-gateway serve` process and a redis-server of the test's own, by counting the connections
Redis lists under the replica's client names (`shape-gateway:<host>-<pid>:<job>`) while 5,000
clients open event feeds at once (a rate-limit check and a live slot each), hold them through
lease renewals, and close them (5,000 releases), while 1,000 of them also post audit events
and send a refused request (a security event each). Every check is answered: commands queue
for a connection, none is refused.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from tests.factories import RULES_YAML, SECRET, make_token
from tests.redis_servers import RedisProcess, RedisServers, wait_for

pytestmark = [pytest.mark.redis]
CLIENTS = 5_000
POOL_SIZE = 4  # GATEWAY_REDIS_POOL_SIZE's default, set explicitly
RULES = RULES_YAML + (
    "limits:\n  default: {requests_per_minute: 100, tenant_requests_per_minute: 1000000, "
    "live_connections_per_user: 2}\n"
)


async def start_gateway(
    redis: RedisProcess, rules: Path, log: Path
) -> tuple[asyncio.subprocess.Process, str]:
    """`shape-gateway serve` logging to a file (5,000 requests' lines would fill a pipe)."""
    env = {**os.environ, "JWT_SECRET": SECRET, "REDIS_URL": redis.url,
           "GATEWAY_REDIS_PREFIX": "gw-connections", "GATEWAY_LIVE_LEASE_SECONDS": "3",
           "GATEWAY_REDIS_POOL_SIZE": str(POOL_SIZE), "LOG_FORMAT": "json"}  # fmt: skip
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", "0",
            "--rules", str(rules), "--upstream", "http://127.0.0.1:9", env=env, stderr=sink,
        )  # fmt: skip
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for line in (await asyncio.to_thread(log.read_text)).splitlines():
            event = json.loads(line)
            if event["event"] == "gateway_listening":
                return process, str(event["url"])
        await asyncio.sleep(0.1)
    text = await asyncio.to_thread(log.read_text)
    raise AssertionError(f"the gateway did not start: {text[-2000:]}")


def all_released(redis: RedisProcess) -> None:
    """Every live slot released: the last ZREM of a lease set deletes it."""
    client = redis.client()
    try:
        wait_for(lambda: not list(client.scan_iter("gw-connections:live:*")), "releases", 30)
    finally:
        client.close()


class Sampler:
    """Counts, every 20 ms, the connections Redis lists for the replica, by job; keeps the
    most seen at once."""

    def __init__(self, redis: RedisProcess, pid: int) -> None:
        self.client = redis.client()
        self.prefix = f"shape-gateway:{socket.gethostname()}-{pid}:"
        self.most: Counter[str] = Counter()
        self.most_total = 0

    def sample(self) -> None:
        jobs = Counter(
            c["name"].removeprefix(self.prefix)
            for c in self.client.client_list()
            if c["name"].startswith(self.prefix)
        )
        for job, count in jobs.items():
            self.most[job] = max(self.most[job], count)
        self.most_total = max(self.most_total, sum(jobs.values()))

    async def run(self) -> None:
        while True:
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(0.02)


async def test_five_thousand_concurrent_requests_use_a_few_named_redis_connections(
    redis_servers: RedisServers, tmp_path: Path
) -> None:
    redis = redis_servers.single()
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    log = tmp_path / "gateway.log"
    gateway, url = await start_gateway(redis, rules, log)
    sampler = Sampler(redis, gateway.pid)
    tokens = [make_token(sub=f"user{n}", tid="acme", role="member") for n in range(CLIENTS)]
    opened = 0
    all_open = asyncio.Event()
    release = asyncio.Event()

    async def hold(session: aiohttp.ClientSession, token: str) -> int:
        nonlocal opened
        headers = {"Authorization": f"Bearer {token}"}
        async with session.get(f"{url}/v1/events", headers=headers) as response:
            opened += 1
            if opened == CLIENTS:
                all_open.set()
            if response.status == 200:
                await release.wait()
            return response.status

    async def audit_and_refusal(session: aiohttp.ClientSession, token: str) -> tuple[int, int]:
        headers = {"Authorization": f"Bearer {token}"}
        batch = [{"id": "e1", "action": "opened"}]
        async with session.post(f"{url}/v1/audit-events", json=batch, headers=headers) as posted:
            accepted = posted.status
        query = {"table": "no_such_shape", "offset": "-1"}
        async with session.get(f"{url}/v1/shape", params=query, headers=headers) as refused:
            return accepted, refused.status

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
            asyncio.TaskGroup() as group,
        ):
            sampling = group.create_task(sampler.run())
            started = time.monotonic()
            feeds = [group.create_task(hold(session, token)) for token in tokens]
            await asyncio.wait_for(all_open.wait(), 90)
            opened_in = time.monotonic() - started
            others = await asyncio.gather(
                *(audit_and_refusal(session, token) for token in tokens[:1000])
            )
            await asyncio.sleep(2.5)  # held through two lease renewals (every second)
            release.set()
            statuses = Counter([await feed for feed in feeds])
            await asyncio.to_thread(all_released, redis)
            sampling.cancel()
    finally:
        gateway.terminate()
        await gateway.wait()
        process_log = await asyncio.to_thread(log.read_text)
    sampler.client.close()
    warnings = Counter(
        e["event"] for e in map(json.loads, process_log.splitlines()) if e["level"] == "warning"
    )
    print(
        f"\n{CLIENTS} concurrent feeds on one replica (opened in {opened_in:.1f} s): Redis "
        f"connections at most {sampler.most_total} ({dict(sampler.most)}); "
        f"feeds {dict(statuses)}, audit posts and refusals {dict(Counter(others))}; "
        f"warnings {dict(warnings)}"
    )
    assert statuses == {200: CLIENTS}
    assert Counter(others) == {(200, 404): 1000}
    assert not warnings  # nothing failed open for want of a connection
    assert sampler.most["revocations"] <= 2
    assert sampler.most["limits"] <= POOL_SIZE
    assert sampler.most["audit"] <= POOL_SIZE
    assert sampler.most_total <= 2 + 2 * POOL_SIZE
