"""Cut-off at scale: with 10,000 long-polls and SSE streams held over 3 gateway replicas sharing
one Redis, how long after an app posts `session.revoked` do that user's streams end?

Run from the repository root: `python -m bench.scale [--users 5000] [--replicas 3]
[--revocations 200] [--json PATH]` (about a minute). Each user holds one long-poll and one SSE
stream, on two different replicas, through a stand-in upstream that only holds
(bench/holding_upstream.py), so the gateways are what is measured. Then users are revoked one
at a time (`POST /admin/revocations` to a random replica) and each of their streams is timed
from just before the POST to its end (the long-poll's 401, the SSE stream's close). Also
measured, for the sizing guide: each replica's memory per held stream and its Redis
connections, the CPU a replica spends per revocation, and Redis memory per retained event.
See bench/README.md.
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
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import redis.asyncio as aioredis
import structlog

from bench import procfs
from bench.services import Service, gateway_argv, gateway_env, gateway_url, rules_yaml, running
from gateway.auth.identity import Identity
from gateway.garbage import NEVER
from gateway.logs import configure_logging
from gateway.metrics import Metrics
from gateway.revocation.enforcer import Revocations
from gateway.revocation.events import EventType, RevocationEvent
from gateway.revocation.store import MemoryStore
from gateway.streams import OpenStreams
from tests.factories import make_token

REDIS_URL: Final = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
WAVE: Final = 500  # streams opened at once
LONG_POLL: Final = 20.0  # seconds the upstream holds a long-poll, as Electric does
HOLDING_SECONDS: Final = 5.0
CUT_TIMEOUT: Final = 5.0
LIVE: Final = {"table": "tasks", "offset": "0_0", "handle": "bench-handle", "live": "true",
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
    collateral: int = 0
    rss_kib_per_stream: list[float] = field(default_factory=list)
    redis_connections: list[dict[str, int]] = field(default_factory=list)  # most at once
    holding_cpu_share: list[float] = field(default_factory=list)  # of a core, merely holding
    apply_us: dict[int, float] = field(default_factory=dict)  # open streams -> µs per event
    gc_pauses_ms: list[list[float]] = field(default_factory=list)  # while revoking, >= 5 ms
    redis_bytes_per_event: dict[str, float] = field(default_factory=dict)


def upstream_url(line: str) -> str | None:
    marker = "holding upstream listening on "
    return line.split(marker, 1)[1].strip() if marker in line else None


async def held_upstream(session: aiohttp.ClientSession, upstream: Service) -> int:
    async with session.get(f"{upstream.url}/_stats") as response:
        return int((await response.json())["held"])


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


async def wait_until_held(session: aiohttp.ClientSession, upstream: Service, count: int) -> None:
    """Until the upstream holds `count`, but for the few long-polls being sent again."""
    deadline = time.monotonic() + 120
    while (held := await held_upstream(session, upstream)) < count - count // 200:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {held} of {count} streams held")
        await asyncio.sleep(0.1)


async def revoke(
    session: aiohttp.ClientSession, gateway: Service, admin: str, streams: list[Stream]
) -> float:
    """POST the user's session.revoked; ms until every one of its streams ended."""
    event = {"type": "session.revoked", "user": streams[0].user}
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {admin}"}
    async with session.post(f"{gateway.url}/admin/revocations", json=event,
                            headers=headers) as response:  # fmt: skip
        if response.status != 202:
            raise RuntimeError(f"the revocation was refused: {response.status}")
    async with asyncio.timeout(CUT_TIMEOUT):
        for stream in streams:
            await stream.ended.wait()
    for stream in streams:
        stream.cut_ms = (stream.ended_at - started) * 1000
    return max(s.cut_ms for s in streams)


async def redis_bytes_per_event(redis: aioredis.Redis, prefix: str) -> dict[str, float]:
    """MEMORY USAGE of a stream of 10,000 events like real ones, per event, by type."""
    sizes = {}
    for kind, fields in {
        "session.revoked": {"type": "session.revoked", "user": "user-0000012345"},
        "membership.revoked": {"type": "membership.revoked", "user": "user-0000012345",
                               "tenant": "tenant-0042"},
    }.items():  # fmt: skip
        key = f"{prefix}:{{sizing}}"
        async with redis.pipeline(transaction=False) as pipe:
            for n in range(10_000):
                entry: dict[Any, Any] = {**fields, "user": f"user-{n:010d}"}
                pipe.xadd(key, entry)
            await pipe.execute()
        sizes[kind] = round(int(await redis.memory_usage(key, samples=0) or 0) / 10_000, 1)
        await redis.delete(key)
    return sizes


class ConnectionSampler:
    """The most Redis connections each replica held at once, by job (CLIENT LIST, 4 a second)."""

    def __init__(self, redis: aioredis.Redis, pids: list[int]) -> None:
        self.redis, self.pids = redis, pids
        self.most: list[dict[str, int]] = [{} for _ in pids]

    async def run(self) -> None:
        while True:
            clients = await self.redis.client_list()
            for most, pid in zip(self.most, self.pids, strict=True):
                for job, count in connections_by_job(clients, pid).items():
                    most[job] = max(most.get(job, 0), count)
            await asyncio.sleep(0.25)


def connections_by_job(clients: list[dict[str, str]], pid: int) -> dict[str, int]:
    marker = f"-{pid}:"
    names = [c["name"] for c in clients]
    return dict(Counter(n.rsplit(":", 1)[1] for n in names
                        if n.startswith("shape-gateway:") and marker in n))  # fmt: skip


def apply_cost_us(open_streams: int, events: int = 2000) -> float:
    """µs to apply one event on a replica holding `open_streams` streams of other users: the
    work is looking up the event's user, whatever else is open (its JSON log line included,
    written to /dev/null)."""
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        configure_logging("json", cache=False)
        try:
            return _apply_cost_us(open_streams, events)
        finally:
            structlog.reset_defaults()


def _apply_cost_us(open_streams: int, events: int) -> float:
    streams = OpenStreams()
    revocations = Revocations(MemoryStore(), 3600, streams, Metrics(), fail_closed=True)
    now = int(time.time())
    with contextlib.ExitStack() as held:
        for n in range(open_streams):
            held.enter_context(streams.track(Identity(f"other{n}", "acme", "admin"), live=True))
        started = time.perf_counter()
        for n in range(events):
            revocations.on_event(
                RevocationEvent(f"{now * 1000}-{n}", EventType.SESSION_REVOKED, now, f"gone{n}")
            )
        return (time.perf_counter() - started) / events * 1e6


def gc_pauses(log: Path, since: float) -> list[float]:
    """The replica's garbage-collection pauses since `since` (with --gc-probe), longest first."""
    events = [json.loads(line) for line in log.read_text().splitlines() if '"gc_pause"' in line]
    return sorted((float(e["ms"]) for e in events if e["at"] >= since), reverse=True)


def percentiles(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else ordered
    at = {"p50": q[49] if len(q) > 49 else ordered[0], "p90": q[89] if len(q) > 89 else ordered[-1],
          "p99": q[98] if len(q) > 98 else ordered[-1]}  # fmt: skip
    return ", ".join(f"{k} {v:.1f}" for k, v in at.items()) + f", max {ordered[-1]:.1f} ms"


@contextlib.asynccontextmanager
async def redis_prefix(url: str) -> AsyncIterator[tuple[aioredis.Redis, str]]:
    redis = aioredis.Redis.from_url(url, decode_responses=True)
    prefix = f"bench-scale-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        yield redis, prefix
    finally:
        keys = [k async for k in redis.scan_iter(f"{prefix}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


@dataclass
class Replicas:
    gateways: list[Service]
    upstream: Service
    session: aiohttp.ClientSession
    redis: aioredis.Redis
    admin: str
    jwt_secret: str


async def hold_and_revoke(replicas: Replicas, options: argparse.Namespace, result: Result) -> None:
    """Hold every stream, measure the replicas holding them, revoke, check the rest."""
    rng = random.Random(options.seed)
    gateways, upstream, session = replicas.gateways, replicas.upstream, replicas.session
    admin, jwt_secret, redis = replicas.admin, replicas.jwt_secret, replicas.redis
    rss_before = [procfs.rss_kib(g.pid) for g in gateways]
    users: dict[str, list[Stream]] = {}
    for n in range(options.users):
        user, home = f"u{n}", n % options.replicas
        users[user] = [Stream(user, "long-poll", home),
                       Stream(user, "sse", (home + 1) % options.replicas)]  # fmt: skip
    everything = [s for streams in users.values() for s in streams]
    tokens = {u: make_token(key=jwt_secret, sub=u, tid="acme", role="admin") for u in users}
    print(f"{len(gateways)} gateways: opening {len(everything)} streams", file=sys.stderr,
          flush=True)  # fmt: skip
    connections = ConnectionSampler(redis, [g.pid for g in gateways])
    async with asyncio.TaskGroup() as group:
        sampling = group.create_task(connections.run())
        started = time.monotonic()
        holding: list[asyncio.Task[None]] = []
        for wave in range(0, len(everything), WAVE):
            holding.extend(
                group.create_task(hold(session, gateways[s.replica].url, tokens[s.user], s))
                for s in everything[wave : wave + WAVE]
            )
            await wait_until_held(session, upstream, min(wave + WAVE, len(everything)))
        result.seconds_to_hold = time.monotonic() - started
        result.held = await held_upstream(session, upstream)
        # The benchmark's own full collections (10,000 connections' objects) would stop it
        # observing the cuts: the replicas' policy (gateway/garbage.py) here too.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*gc.get_threshold()[:2], NEVER)
        await asyncio.sleep(max(0.0, started + LONG_POLL - time.monotonic()))  # cycling now
        quiet_from, cpu_quiet = time.perf_counter(), [procfs.cpu_seconds(g.pid) for g in gateways]
        await asyncio.sleep(HOLDING_SECONDS)  # what merely holding costs, long-polls cycling
        quiet = time.perf_counter() - quiet_from
        holding_rate = [(procfs.cpu_seconds(g.pid) - cpu_quiet[n]) / quiet
                        for n, g in enumerate(gateways)]  # fmt: skip
        result.holding_cpu_share = [round(rate, 3) for rate in holding_rate]
        per_replica = Counter(s.replica for s in everything)
        result.rss_kib_per_stream = [
            round((procfs.rss_kib(g.pid) - rss_before[n]) / per_replica[n], 1)
            for n, g in enumerate(gateways)
        ]
        print(f"  {result.held} held in {result.seconds_to_hold:.0f} s; revoking",
              file=sys.stderr, flush=True)  # fmt: skip
        revoking_from = time.time()
        revoked = rng.sample(sorted(users), options.revocations)
        for user in revoked:
            posted_to = gateways[rng.randrange(len(gateways))]
            result.cutoff_ms.append(await revoke(session, posted_to, admin, users[user]))
            await asyncio.sleep(options.pause)
        sampling.cancel()
        result.redis_connections = connections.most
        result.gc_pauses_ms = [gc_pauses(g.log, revoking_from) for g in gateways]
        cut = [s for u in revoked for s in users[u]]
        for kind in ("long-poll", "sse"):
            result.stream_ms[kind] = [s.cut_ms for s in cut if s.kind == kind]
        result.outcomes = dict(Counter(f"{s.kind}: {s.outcome}" for s in cut))
        result.renewals = sum(s.renewals for s in everything)
        others = set(users) - set(revoked)
        result.collateral = sum(s.ended.is_set() for s in everything if s.user in others)
        for task in holding:
            task.cancel()  # the streams still held


async def benchmark(options: argparse.Namespace, workdir: Path) -> Result:
    jwt_secret, admin = secrets.token_urlsafe(48), secrets.token_urlsafe(32)
    result = Result(settings={k: v for k, v in vars(options).items() if k != "json"})
    result.apply_us = {n: round(apply_cost_us(n), 1) for n in (100, 10_000)}
    async with contextlib.AsyncExitStack() as exits:
        redis, prefix = await exits.enter_async_context(redis_prefix(REDIS_URL))
        result.redis_bytes_per_event = await redis_bytes_per_event(redis, prefix)
        rules = workdir / "rules.yaml"
        rules.write_text(rules_yaml("public"))
        upstream = await exits.enter_async_context(running(
            "holding upstream",
            [sys.executable, "-m", "bench.holding_upstream", "--long-poll", str(LONG_POLL)],
            os.environ,
            workdir / "upstream.log", upstream_url,
        ))  # fmt: skip
        env = gateway_env(jwt_secret, "bench-secret")
        env.update(REDIS_URL=REDIS_URL, GATEWAY_REDIS_PREFIX=prefix, GATEWAY_ADMIN_TOKEN=admin)
        argv = gateway_argv(rules, upstream.url, None)
        if options.gc_probe:
            argv = [sys.executable, "-m", "bench.gc_probe", *argv[argv.index("serve") :]]
        gateways = [
            await exits.enter_async_context(running(
                f"gateway #{n}", argv, env, workdir / f"gateway-{n}.log", gateway_url,
            ))
            for n in range(options.replicas)
        ]  # fmt: skip
        connector = aiohttp.TCPConnector(limit=0)
        session = await exits.enter_async_context(
            aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))
        )
        for gateway in gateways:
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{gateway.url}/readyz") as response:
                        if response.status == 200:
                            break
                await asyncio.sleep(0.1)
        await hold_and_revoke(Replicas(gateways, upstream, session, redis, admin, jwt_secret),
                              options, result)  # fmt: skip
    return result


def render(result: Result) -> str:
    lines = [
        f"held {result.held} streams ({result.settings['users']} users x a long-poll and an SSE "
        f"stream) over {result.settings['replicas']} replicas, in {result.seconds_to_hold:.0f} s",
        f"cut-off, POST -> all of the user's streams ended ({len(result.cutoff_ms)} "
        f"revocations): {percentiles(result.cutoff_ms)}",
        *(f"  {kind} alone: {percentiles(ms)}" for kind, ms in result.stream_ms.items()),
        f"outcomes: {result.outcomes}; other streams ended: {result.collateral}; long-polls "
        f"answered at the upstream's timeout and sent again: {result.renewals}",
        f"memory per held stream (RSS, KiB) per replica: {result.rss_kib_per_stream}",
        f"Redis connections per replica, by job, most at once: {result.redis_connections}",
        f"CPU merely holding (long-polls cycling every {LONG_POLL:.0f} s), share of a core per "
        f"replica: {result.holding_cpu_share}",
        "applying one event (in process, no stream of its user open): "
        + ", ".join(f"{us:.1f} µs with {n:,} streams open" for n, us in result.apply_us.items()),
        *(
            [
                f"GC pauses >= 5 ms while revoking, per replica (ms, longest first): "
                f"{[p[:5] for p in result.gc_pauses_ms]}"
            ]
            if result.settings["gc_probe"]
            else []
        ),
        f"Redis memory per retained event (MEMORY USAGE / 10,000 entries, bytes): "
        f"{result.redis_bytes_per_event}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--users", type=int, default=5000, help="each holds 2 streams")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--revocations", type=int, default=200)
    parser.add_argument("--pause", type=float, default=0.1,
                        help="seconds between revocations: with the defaults they span more "
                             "than one 20 s long-poll cycle")  # fmt: skip
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--gc-probe",
        action="store_true",
        help="log the replicas' garbage-collection pauses (bench/gc_probe.py)",
    )
    options = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    result = asyncio.run(benchmark(options, workdir))
    print(render(result))
    if options.json is not None:
        options.json.write_text(json.dumps(asdict(result), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
