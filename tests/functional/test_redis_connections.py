"""A replica's Redis connections stay few whatever its request concurrency, and within the bound
docs/redis.md gives, on every server it talks to: measured on a real `shape-gateway serve`
process and redis-server processes of the test's own, by counting (`CLIENT LIST`, every 20 ms)
the connections each server lists under the replica's client names
(`shape-gateway:<host>-<pid>:<job>`, and `...:<job>:sentinel` on the sentinels).

The load: clients open event feeds at once (a rate-limit check and a live slot each), hold them
through lease renewals and close them (a release each), while some also post audit events and
send a refused request (a security event each), and revocations are published. One server
takes 5,000 feeds; a Cluster and a Sentinel-watched master take 1,000, twice, with a master
killed in between (its failover reconnects every job). Every check is answered: commands
queue for a connection, none is refused.
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
import redis

from tests.factories import RULES_YAML, SECRET, make_token
from tests.functional.enforcement import until
from tests.functional.test_redis_cluster import masters_of
from tests.gateway import ADMIN_TOKEN
from tests.redis_servers import RedisProcess, RedisServers

pytestmark = [pytest.mark.redis]
POOL_SIZE = 4  # GATEWAY_REDIS_POOL_SIZE's default, set explicitly
PREFIX = "gw-connections"
RULES = RULES_YAML + (
    "limits:\n  default: {requests_per_minute: 100, tenant_requests_per_minute: 1000000, "
    "live_connections_per_user: 2}\n"
)
# The bound docs/redis.md gives, per job, on each data node and on each sentinel.
DATA_NODE_BOUND = {"revocations": 2, "limits": POOL_SIZE, "audit": POOL_SIZE}
SENTINEL_BOUND = {f"{job}:sentinel": 1 for job in DATA_NODE_BOUND}


async def start_gateway(
    redis_url: str, rules: Path, log: Path
) -> tuple[asyncio.subprocess.Process, str]:
    """`shape-gateway serve` logging to a file (5,000 requests' lines would fill a pipe)."""
    env = {**os.environ, "JWT_SECRET": SECRET, "REDIS_URL": redis_url,
           "GATEWAY_REDIS_PREFIX": PREFIX, "GATEWAY_LIVE_LEASE_SECONDS": "3",
           "GATEWAY_REDIS_POOL_SIZE": str(POOL_SIZE), "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
           "LOG_FORMAT": "json"}  # fmt: skip
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


def no_live_slots(servers: list[RedisProcess]) -> bool:
    """Every live slot released: the last ZREM of a lease set deletes it."""
    for server in servers:
        client = server.client()
        try:
            if list(client.scan_iter(f"{PREFIX}:live:*")):
                return False
        except redis.RedisError:
            continue  # a server the test killed, or a replica
        finally:
            client.close()
    return True


class Sampler:
    """Counts, every 20 ms, the connections each server lists for the replica, by job; keeps
    the most seen at once, per server and job, and per server."""

    def __init__(self, servers: dict[str, RedisProcess], pid: int) -> None:
        self.servers = servers
        self.prefix = f"shape-gateway:{socket.gethostname()}-{pid}:"
        self.most: Counter[tuple[str, str]] = Counter()
        self.most_total: Counter[str] = Counter()

    def sample(self) -> None:
        for name, server in self.servers.items():
            client = server.client()
            try:
                listed = client.client_list()
            except redis.RedisError:
                continue  # killed
            finally:
                client.close()
            jobs = Counter(
                c["name"].removeprefix(self.prefix)
                for c in listed
                if c["name"].startswith(self.prefix)
            )
            for job, count in jobs.items():
                self.most[name, job] = max(self.most[name, job], count)
            self.most_total[name] = max(self.most_total[name], sum(jobs.values()))

    async def run(self) -> None:
        while True:
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(0.02)

    def over(self, bound: dict[str, int]) -> dict[tuple[str, str], int]:
        """What went beyond `bound` (jobs it does not name are left to the other bound)."""
        return {(s, j): n for (s, j), n in self.most.items() if j in bound and n > bound[j]}

    def report(self) -> str:
        parts = []
        for name, total in self.most_total.items():
            jobs = ", ".join(f"{j} {n}" for (s, j), n in self.most.items() if s == name)
            parts.append(f"{name} {total} ({jobs})")
        return "; ".join(parts)


class Load:
    """Feeds held open, audit posts and refusals, revocations published: on one replica."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url
        self.feeds: Counter[int] = Counter()
        self.others: Counter[tuple[int, int]] = Counter()
        self.published: Counter[int] = Counter()

    async def hold(self, token: str, opened: asyncio.Event, count: list[int],
                   release: asyncio.Event, clients: int) -> None:  # fmt: skip
        headers = {"Authorization": f"Bearer {token}"}
        async with self.session.get(f"{self.url}/v1/events", headers=headers) as response:
            count[0] += 1
            if count[0] == clients:
                opened.set()
            if response.status == 200:
                await release.wait()
            self.feeds[response.status] += 1

    async def audit_and_refusal(self, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        batch = [{"id": "e1", "action": "opened"}]
        async with self.session.post(
            f"{self.url}/v1/audit-events", json=batch, headers=headers
        ) as posted:
            accepted = posted.status
        query = {"table": "no_such_shape", "offset": "-1"}
        async with self.session.get(f"{self.url}/v1/shape", params=query, headers=headers) as r:
            self.others[accepted, r.status] += 1

    async def publish(self, user: str) -> None:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        event = {"type": "session.revoked", "user": user}
        async with self.session.post(
            f"{self.url}/admin/revocations", json=event, headers=headers
        ) as response:
            self.published[response.status] += 1

    async def wave(self, name: str, clients: int, others: int, hold: float) -> float:
        """`clients` feeds opened at once, held for `hold` s (with `others` audit posts and
        refusals, and three revocations), then closed; returns the seconds opening took."""
        tokens = [make_token(sub=f"{name}{n}", tid="acme", role="member") for n in range(clients)]
        opened, release, count = asyncio.Event(), asyncio.Event(), [0]
        started = time.monotonic()
        async with asyncio.TaskGroup() as group:
            for token in tokens:
                group.create_task(self.hold(token, opened, count, release, clients))
            await asyncio.wait_for(opened.wait(), 90)
            opened_in = time.monotonic() - started
            await asyncio.gather(
                *(self.audit_and_refusal(t) for t in tokens[:others]),
                *(self.publish(f"{name}-revoked-{n}") for n in range(3)),
            )
            await asyncio.sleep(hold)  # held through lease renewals (every second)
            release.set()
        return opened_in


def warnings_in(log: Path) -> Counter[str]:
    return Counter(
        e["event"] for e in map(json.loads, log.read_text().splitlines()) if e["level"] == "warning"
    )


async def test_five_thousand_concurrent_requests_use_a_few_named_redis_connections(
    redis_servers: RedisServers, tmp_path: Path
) -> None:
    server = redis_servers.single()
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    log = tmp_path / "gateway.log"
    gateway, url = await start_gateway(server.url, rules, log)
    sampler = Sampler({"server": server}, gateway.pid)
    connector = aiohttp.TCPConnector(limit=0)
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(120)) as s,
            asyncio.TaskGroup() as group,
        ):
            sampling = group.create_task(sampler.run())
            load = Load(s, url)
            opened_in = await load.wave("user", 5_000, 1_000, hold=2.5)
            await until(lambda: no_live_slots([server]), "the releases", 30)
            sampling.cancel()
    finally:
        gateway.terminate()
        await gateway.wait()
    warnings = warnings_in(log)
    print(
        f"\n5000 concurrent feeds on one replica (opened in {opened_in:.1f} s): Redis "
        f"connections at most {sampler.report()}; feeds {dict(load.feeds)}, audit posts and "
        f"refusals {dict(load.others)}, revocations {dict(load.published)}; warnings "
        f"{dict(warnings)}"
    )
    assert load.feeds == {200: 5_000}
    assert load.others == {(200, 404): 1000}
    assert load.published == {202: 3}
    assert not warnings  # nothing failed open for want of a connection
    assert not sampler.over(DATA_NODE_BOUND)
    assert sampler.most_total["server"] <= 2 + 2 * POOL_SIZE


async def load_through_a_failover(
    servers: dict[str, RedisProcess], redis_url: str, kill: RedisProcess,
    failed_over: object, tmp_path: Path,
) -> tuple[Sampler, Load]:  # fmt: skip
    """1,000 feeds (and the rest), `kill` killed, failover awaited, 1,000 feeds again."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    gateway, url = await start_gateway(redis_url, rules, tmp_path / "gateway.log")
    sampler = Sampler(servers, gateway.pid)
    try:
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(120)
            ) as session,
            asyncio.TaskGroup() as group,
        ):
            sampling = group.create_task(sampler.run())
            load = Load(session, url)
            await load.wave("before", 1_000, 300, hold=1.5)
            kill.kill()
            assert callable(failed_over)
            await until(failed_over, "the failover", 20)
            await load.wave("after", 1_000, 300, hold=1.5)
            await until(lambda: no_live_slots(list(servers.values())), "the releases", 30)
            sampling.cancel()
    finally:
        gateway.terminate()
        await gateway.wait()
    return sampler, load


async def test_each_cluster_node_holds_at_most_the_bound_through_a_failover(
    redis_servers: RedisServers, tmp_path: Path
) -> None:
    cluster = redis_servers.cluster(masters=3, replicas=1)
    nodes = {f"node-{n}": node for n, node in enumerate(cluster.nodes)}
    victim = masters_of(cluster)[0]
    sampler, load = await load_through_a_failover(
        nodes, cluster.url, victim, lambda: len(masters_of(cluster)) == 3, tmp_path
    )
    print(f"\ncluster, 2 x 1000 feeds and a master killed: at most {sampler.report()}")
    assert load.feeds == {200: 2_000}
    assert not sampler.over(DATA_NODE_BOUND)
    assert max(sampler.most_total.values()) <= 2 + 2 * POOL_SIZE


async def test_the_master_and_each_sentinel_hold_at_most_the_bound_through_a_failover(
    redis_servers: RedisServers, tmp_path: Path
) -> None:
    group = redis_servers.replicated()
    servers = {"master": group.master, "replica": group.replica}
    servers |= {f"sentinel-{n}": s for n, s in enumerate(group.sentinels)}

    def promoted() -> bool:
        return group.master_port() == group.replica.port

    sampler, load = await load_through_a_failover(
        servers, group.url, group.master, promoted, tmp_path
    )
    print(f"\nSentinel, 2 x 1000 feeds and the master killed: at most {sampler.report()}")
    assert load.feeds == {200: 2_000}
    assert not sampler.over(DATA_NODE_BOUND)
    assert not sampler.over(SENTINEL_BOUND)
    for name in ("master", "replica"):
        assert sampler.most_total[name] <= 2 + 2 * POOL_SIZE
    for n in range(3):
        assert sampler.most_total[f"sentinel-{n}"] <= 3
