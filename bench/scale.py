"""Cut-off at scale: with 10,000 long-polls and SSE streams held over 3 gateway replicas sharing
one Redis, how long after an app posts `session.revoked` do that user's streams end?

    python -m bench.scale                       # 5,000 users x 2 streams, 3 replicas, 200 cuts
    python -m bench.scale --users 1000 --replicas 2 --revocations 50 --json out.json

Each user holds one long-poll and one SSE stream, on two different replicas, through the
in-memory upstream (bench/upstream.py: a long-poll held 20 s, then up to date; an SSE stream held
until the client goes), so the gateways are what is measured. Users are then revoked one at a
time (`POST /admin/revocations` to a random replica) and each of their streams is timed from
just before the POST to its end (the long-poll's 401, the SSE stream's close). Also measured,
for the sizing guide: each replica's memory per held stream, its CPU merely holding and its
Redis connections; applying one event with 100 and 10,000 streams open (in process); Redis
memory per retained event. Nothing is pinned: replicas, upstream, Redis and this process (the
10,000 client connections) share the cores, and the report says how busy others kept them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import secrets
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import psutil
import redis
import redis.asyncio as aioredis
import structlog
from redis.typing import EncodableT, FieldT

from bench.fanout import tokens
from bench.stack import Server, Stack, cpu_seconds
from gateway.auth.identity import Identity
from gateway.log_sink import SINK
from gateway.logs import configure_logging
from gateway.metrics import Metrics
from gateway.revocation.enforcer import Revocations
from gateway.revocation.events import EventType, RevocationEvent
from gateway.revocation.store import MemoryStore
from gateway.server.garbage import NEVER
from gateway.streams import OpenStreams

REDIS_URL: Final = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
LONG_POLL: Final = 20.0  # seconds the upstream holds a long-poll, as Electric does
WAVE: Final = 50  # streams opened at once; the waves are spread over one long-poll cycle,
# so that their long-polls come back and are sent again spread out, as real clients' are
HOLDING_SECONDS: Final = 5.0
CUT_TIMEOUT: Final = 5.0
LIVE: Final = {"table": "items", "offset": "1_0", "handle": "1795968529-1", "live": "true",
               "cursor": "0"}  # fmt: skip


@dataclass(eq=False)
class Stream:
    user: str
    kind: str  # "long-poll" or "sse"
    replica: int
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    ended_at: float = 0.0
    outcome: str = ""
    cut_ms: float = 0.0  # from just before its user's revocation was posted
    renewals: int = 0


@dataclass
class Result:
    settings: dict[str, Any]
    held: int = 0
    seconds_to_hold: float = 0.0
    renewals: int = 0  # long-polls answered at the upstream's timeout and sent again
    cutoff_ms: list[float] = field(default_factory=list)  # per user: until all its streams ended
    stream_ms: dict[str, list[float]] = field(default_factory=dict)  # per kind, per stream
    outcomes: dict[str, int] = field(default_factory=dict)
    collateral: int = 0  # streams of users not revoked that ended meanwhile
    kib_per_stream: list[float] = field(default_factory=list)  # RSS, per replica
    holding_cpu: list[float] = field(default_factory=list)  # share of a core, per replica
    redis_connections: list[dict[str, int]] = field(default_factory=list)  # most at once, by job
    apply_us: dict[int, float] = field(default_factory=dict)  # open streams -> µs per event
    machine_busy: float = 0.0  # while revoking: share of all cores in use
    others_share: float = 0.0  # ... used by processes not of this benchmark
    redis_bytes_per_event: dict[str, float] = field(default_factory=dict)


def redis_bytes_per_event(client: redis.Redis, prefix: str) -> dict[str, float]:
    """MEMORY USAGE of a stream of 10,000 events like real ones, per event, by type."""
    sizes = {}
    key = f"{prefix}:{{sizing}}"
    tenant: dict[FieldT, EncodableT] = {"tenant": "tenant-0042"}
    for kind, extra in {"session.revoked": {}, "membership.revoked": tenant}.items():
        with client.pipeline(transaction=False) as pipe:
            for n in range(10_000):
                entry: dict[FieldT, EncodableT] = {"type": kind, "user": f"user-{n:010d}", **extra}
                pipe.xadd(key, entry)
            pipe.execute()
        sizes[kind] = round(int(client.memory_usage(key, samples=0) or 0) / 10_000, 1)
        client.delete(key)
    return sizes


def apply_cost_us(open_streams: int, events: int = 2000) -> float:
    """µs to apply one event on a replica holding `open_streams` streams of other users: the
    work is looking up the event's user, whatever else is open (its JSON log line included,
    written to /dev/null)."""
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        configure_logging("json", cache=False)
        streams = OpenStreams()
        revocations = Revocations(MemoryStore(), 3600, streams, Metrics(), fail_closed=True)
        now = int(time.time())
        try:
            with contextlib.ExitStack() as held:
                for n in range(open_streams):
                    other = Identity(f"other{n}", "acme", "member")
                    held.enter_context(streams.track(other, live=True))
                started = time.perf_counter()
                for n in range(events):
                    revocations.on_event(RevocationEvent(
                        f"{now * 1000}-{n}", EventType.SESSION_REVOKED, now, f"gone{n}"
                    ))  # fmt: skip
                SINK.flush()  # the lines' write, as a replica's loop does once per iteration
                return (time.perf_counter() - started) / events * 1e6
        finally:
            structlog.reset_defaults()


async def sample_connections(client: aioredis.Redis, pids: list[int], stop: asyncio.Event
                             ) -> list[dict[str, int]]:  # fmt: skip
    """The most Redis connections each replica held at once, by job (CLIENT LIST, 4 a second,
    until `stop`); the replicas name theirs `shape-gateway:<host>-<pid>:<job>`."""
    most: list[Counter[str]] = [Counter() for _ in pids]
    while not stop.is_set():
        names = [c["name"] for c in await client.client_list()]
        for replica, pid in enumerate(pids):
            now = Counter(n.rsplit(":", 1)[1] for n in names
                          if n.startswith("shape-gateway:") and f"-{pid}:" in n)  # fmt: skip
            most[replica] |= now  # keeps the larger count of each job
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)
    return [dict(seen) for seen in most]


def machine_seconds() -> tuple[float, float]:
    """(busy, capacity) CPU seconds of all cores since boot."""
    times = psutil.cpu_times()
    capacity = sum(times) - getattr(times, "guest", 0) - getattr(times, "guest_nice", 0)
    return capacity - times.idle - getattr(times, "iowait", 0), capacity


async def hold(session: aiohttp.ClientSession, url: str, token: str, stream: Stream) -> None:
    """One stream, from its request to its end; records how and when it ended. A long-poll
    the upstream answers (200, up to date, after 20 s) is sent again, as a client does."""
    query = {**LIVE, "live_sse": "true"} if stream.kind == "sse" else LIVE
    headers = {"Authorization": f"Bearer {token}"}
    while True:
        try:
            async with session.get(f"{url}/v1/shape", params=query, headers=headers) as response:
                body = await response.read()  # an SSE stream: until it closes
                error = json.loads(body).get("error", "") if response.status >= 400 else ""
                stream.outcome = f"{response.status} {error}".strip()
        except aiohttp.ClientError as failure:
            stream.outcome = type(failure).__name__
        if stream.kind == "sse" or stream.outcome != "200":
            break
        stream.renewals += 1
    stream.ended_at = time.perf_counter()
    stream.ended.set()


@dataclass
class Run:
    """One run's servers, client session, users and result."""

    gateways: list[Server]
    upstream: Server
    admin: str
    session: aiohttp.ClientSession
    users: dict[str, list[Stream]]
    result: Result

    @property
    def everything(self) -> list[Stream]:
        return [s for streams in self.users.values() for s in streams]

    async def held_upstream(self) -> int:
        async with self.session.get(f"{self.upstream.url}/_stats") as response:
            return int((await response.json())["held"])

    async def open_all(self, group: asyncio.TaskGroup) -> list[asyncio.Task[None]]:
        """Open every stream, spread over one long-poll cycle; returns once the upstream holds
        them (but for the few long-polls being sent again)."""
        keys = dict(zip(self.users, tokens(len(self.users)), strict=True))
        everything = self.everything
        started = time.monotonic()
        holding: list[asyncio.Task[None]] = []
        waves = range(0, len(everything), WAVE)
        for n, wave in enumerate(waves):
            holding.extend(
                group.create_task(hold(self.session, self.gateways[s.replica].url, keys[s.user], s))
                for s in everything[wave : wave + WAVE]
            )
            await asyncio.sleep(max(0.0, started + LONG_POLL * (n + 1) / len(waves)
                                    - time.monotonic()))  # fmt: skip
        deadline = time.monotonic() + 120
        while (held := await self.held_upstream()) < len(everything) * 0.995:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {held} of {len(everything)} streams held")
            await asyncio.sleep(0.1)
        self.result.seconds_to_hold = time.monotonic() - started
        self.result.held = held
        return holding

    async def measure_holding(self, rss_before: list[int]) -> None:
        """CPU while merely holding (long-polls cycling), and memory per held stream."""
        gateways, result = self.gateways, self.result
        cpu_from, started = [g.cpu_seconds() for g in gateways], time.perf_counter()
        await asyncio.sleep(HOLDING_SECONDS)
        seconds = time.perf_counter() - started
        result.holding_cpu = [round((g.cpu_seconds() - cpu_from[n]) / seconds, 3)
                              for n, g in enumerate(gateways)]  # fmt: skip
        per_replica = Counter(s.replica for s in self.everything)
        result.kib_per_stream = [round((g.rss() - rss_before[n]) / per_replica[n] / 1024, 1)
                                 for n, g in enumerate(gateways)]  # fmt: skip

    async def revoke(self, gateway: Server, streams: list[Stream]) -> float:
        """POST the user's session.revoked; ms until every one of its streams ended."""
        event = {"type": "session.revoked", "user": streams[0].user}
        started = time.perf_counter()
        headers = {"Authorization": f"Bearer {self.admin}"}
        url = f"{gateway.url}/admin/revocations"
        async with self.session.post(url, json=event, headers=headers) as answer:
            if answer.status != 202:
                raise RuntimeError(f"the revocation was refused: {answer.status}")
        async with asyncio.timeout(CUT_TIMEOUT):
            for stream in streams:
                await stream.ended.wait()
        for stream in streams:
            stream.cut_ms = (stream.ended_at - started) * 1000
        return max(s.cut_ms for s in streams)

    async def revoke_some(self, options: argparse.Namespace, redis_pid: int) -> list[str]:
        """Revoke users one at a time, meanwhile the machine's CPU; returns who was revoked."""
        rng, gateways, result = random.Random(options.seed), self.gateways, self.result
        ours = [*(g.process.pid for g in gateways), self.upstream.process.pid, os.getpid(),
                redis_pid]  # fmt: skip
        revoked = rng.sample(sorted(self.users), options.revocations)
        (busy_from, capacity_from), ours_from = machine_seconds(), cpu_seconds(ours)
        for user in revoked:
            posted_to = gateways[rng.randrange(len(gateways))]
            result.cutoff_ms.append(await self.revoke(posted_to, self.users[user]))
            await asyncio.sleep(options.pause)
        busy, capacity = machine_seconds()
        busy, capacity = busy - busy_from, capacity - capacity_from
        result.machine_busy = round(busy / capacity, 3)
        others = busy - (cpu_seconds(ours) - ours_from)
        result.others_share = round(max(others, 0.0) / capacity, 3)
        return revoked

    def check(self, revoked: list[str]) -> None:
        """How the revoked users' streams ended, and whether any other stream did."""
        result, everything = self.result, self.everything
        cut = [s for u in revoked for s in self.users[u]]
        for kind in ("long-poll", "sse"):
            result.stream_ms[kind] = [s.cut_ms for s in cut if s.kind == kind]
        result.outcomes = dict(Counter(f"{s.kind}: {s.outcome}" for s in cut))
        result.renewals = sum(s.renewals for s in everything)
        spared = set(self.users) - set(revoked)
        result.collateral = sum(s.ended.is_set() for s in everything if s.user in spared)


async def benchmark(
    gateways: list[Server], upstream: Server, admin: str, options: argparse.Namespace,
    result: Result,
) -> None:  # fmt: skip
    """Hold every stream, measure the replicas holding them, revoke, check the rest."""
    apply_cost_us(100)  # warm-up; then in a task of a running loop, as a replica does
    result.apply_us = {n: round(apply_cost_us(n), 1) for n in (100, 10_000)}
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    redis_pid = int((await client.info("server"))["process_id"])
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None)
    async with client, aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for gateway in gateways:  # ready: it has read the revocation stream and follows it
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{gateway.url}/readyz") as response:
                        if response.status == 200:
                            break
                await asyncio.sleep(0.1)
        rss_before = [g.rss() for g in gateways]
        # User N holds a long-poll on replica N mod replicas and an SSE stream on the next.
        users = {f"user-{n}": [Stream(f"user-{n}", "long-poll", n % options.replicas),
                               Stream(f"user-{n}", "sse", (n + 1) % options.replicas)]
                 for n in range(options.users)}  # fmt: skip
        run = Run(gateways, upstream, admin, session, users, result)
        print(f"{len(gateways)} gateways: opening {2 * len(users)} streams", file=sys.stderr)
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            pids = [g.process.pid for g in gateways]
            sampling = group.create_task(sample_connections(client, pids, stop))
            holding = await run.open_all(group)
            # This process's own full collections (10,000 connections' objects) would stop it
            # observing the cuts: the replicas' policy (gateway/server/garbage.py) here too.
            gc.collect()
            gc.freeze()
            gc.set_threshold(*gc.get_threshold()[:2], NEVER)
            await run.measure_holding(rss_before)
            print(f"  {result.held} held in {result.seconds_to_hold:.0f} s; revoking",
                  file=sys.stderr)  # fmt: skip
            revoked = await run.revoke_some(options, redis_pid)
            stop.set()
            result.redis_connections = await sampling
            run.check(revoked)
            for task in holding:
                task.cancel()  # the streams still held


def percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values}"
    q = statistics.quantiles(values, n=100, method="inclusive")
    return f"p50 {q[49]:.1f}, p90 {q[89]:.1f}, p99 {q[98]:.1f}, max {max(values):.1f} ms"


def render(result: Result) -> str:
    busy = f"while revoking the machine was {result.machine_busy:.0%} busy, "
    busy += f"{result.others_share:.0%} by processes not of this benchmark"
    busy += " (more than 10%: rerun on a quiet machine)" if result.others_share > 0.1 else ""
    apply = ", ".join(f"{us:.1f} µs with {n:,} streams open" for n, us in result.apply_us.items())
    return "\n".join([
        f"held {result.held} streams ({result.settings['users']} users x a long-poll and an SSE "
        f"stream) over {result.settings['replicas']} replicas, in {result.seconds_to_hold:.0f} s",
        f"cut-off, POST -> all of the user's streams ended ({len(result.cutoff_ms)} "
        f"revocations): {percentiles(result.cutoff_ms)}",
        *(f"  {kind} alone: {percentiles(ms)}" for kind, ms in result.stream_ms.items()),
        busy,
        f"outcomes: {result.outcomes}; other streams ended: {result.collateral}; long-polls "
        f"answered at the upstream's timeout and sent again: {result.renewals}",
        f"memory per held stream (RSS, KiB) per replica: {result.kib_per_stream}",
        f"CPU merely holding (long-polls cycling every {LONG_POLL:.0f} s), share of a core per "
        f"replica: {result.holding_cpu}",
        f"Redis connections per replica, by job, most at once: {result.redis_connections}",
        f"applying one event (in process, no stream of its user open): {apply}",
        f"Redis memory per retained event (MEMORY USAGE / 10,000 entries, bytes): "
        f"{result.redis_bytes_per_event}",
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--users", type=int, default=5000, help="each holds 2 streams")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--revocations", type=int, default=200)
    parser.add_argument("--pause", type=float, default=0.1,
                        help="seconds between revocations: with the defaults they span more "
                             "than one 20 s long-poll cycle")  # fmt: skip
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    result = Result(settings={k: v for k, v in vars(options).items() if k != "json"})
    prefix = f"bench-scale-{os.getpid()}-{secrets.token_hex(3)}"
    admin = secrets.token_urlsafe(32)
    with redis.Redis.from_url(REDIS_URL) as client:
        result.redis_bytes_per_event = redis_bytes_per_event(client, prefix)
    with Stack() as stack:
        upstream = stack.upstream(hold=LONG_POLL, sse_hold=3600, cpu=None)
        env = {"GATEWAY_ADMIN_TOKEN": admin}
        gateways = [stack.gateway(upstream, REDIS_URL, prefix=prefix, env=env, cpu=None)
                    for _ in range(options.replicas)]  # fmt: skip
        asyncio.run(benchmark(gateways, upstream, admin, options, result))
    print(render(result))
    if options.json is not None:
        options.json.write_text(json.dumps(asdict(result), indent=2) + "\n")


if __name__ == "__main__":
    main()
