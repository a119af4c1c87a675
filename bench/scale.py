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
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

import aiohttp
import redis.asyncio as aioredis

from bench import procfs
from bench.revocation import redis_server_pid
from bench.scale_report import (
    LONG_POLL,
    ConnectionSampler,
    Result,
    apply_cost_us,
    gc_pauses,
    redis_bytes_per_event,
    render,
)
from bench.services import Service, gateway_argv, gateway_env, gateway_url, rules_yaml, running
from gateway.garbage import NEVER
from tests.factories import make_token

REDIS_URL: Final = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
WAVE: Final = 50  # streams opened at once; the waves are spread over one long-poll cycle,
# so that their long-polls come back and are sent again spread out, as real clients' are
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


def make_users(options: argparse.Namespace) -> dict[str, list[Stream]]:
    """User uN holds a long-poll on replica N mod replicas and an SSE stream on the next."""
    users: dict[str, list[Stream]] = {}
    for n in range(options.users):
        user, home = f"u{n}", n % options.replicas
        users[user] = [Stream(user, "long-poll", home),
                       Stream(user, "sse", (home + 1) % options.replicas)]  # fmt: skip
    return users


async def open_all(
    replicas: Replicas, everything: list[Stream], group: asyncio.TaskGroup, result: Result
) -> list[asyncio.Task[None]]:
    """Open every stream, spread over one long-poll cycle; returns once the upstream holds them."""
    tokens = {s.user: make_token(key=replicas.jwt_secret, sub=s.user, tid="acme", role="admin")
              for s in everything}  # fmt: skip
    started = time.monotonic()
    holding: list[asyncio.Task[None]] = []
    waves = range(0, len(everything), WAVE)
    for n, wave in enumerate(waves):
        holding.extend(
            group.create_task(hold(replicas.session, replicas.gateways[s.replica].url,
                                   tokens[s.user], s))
            for s in everything[wave : wave + WAVE]
        )  # fmt: skip
        await asyncio.sleep(max(0.0, started + LONG_POLL * (n + 1) / len(waves)
                                - time.monotonic()))  # fmt: skip
    await wait_until_held(replicas.session, replicas.upstream, len(everything))
    result.seconds_to_hold = time.monotonic() - started
    result.held = await held_upstream(replicas.session, replicas.upstream)
    return holding


async def measure_holding(
    gateways: list[Service], everything: list[Stream], rss_before: list[int], result: Result
) -> None:
    """CPU while merely holding (long-polls cycling), and memory per held stream."""
    cpu_from, started = [procfs.cpu_seconds(g.pid) for g in gateways], time.perf_counter()
    await asyncio.sleep(HOLDING_SECONDS)
    seconds = time.perf_counter() - started
    result.holding_cpu_share = [round((procfs.cpu_seconds(g.pid) - cpu_from[n]) / seconds, 3)
                                for n, g in enumerate(gateways)]  # fmt: skip
    per_replica = Counter(s.replica for s in everything)
    result.rss_kib_per_stream = [
        round((procfs.rss_kib(g.pid) - rss_before[n]) / per_replica[n], 1)
        for n, g in enumerate(gateways)
    ]


async def revoke_some(
    replicas: Replicas, users: dict[str, list[Stream]], options: argparse.Namespace,
    result: Result,
) -> list[str]:  # fmt: skip
    """Revoke users one at a time; the machine's CPU meanwhile; returns who was revoked."""
    rng = random.Random(options.seed)
    gateways = replicas.gateways
    pids = {f"gateway {n}": g.pid for n, g in enumerate(gateways)}
    pids |= {"upstream": replicas.upstream.pid, "bench": os.getpid()}
    if (redis_pid := redis_server_pid()) is not None:
        pids["redis"] = redis_pid
    revoking_from, cpu_before = time.time(), procfs.take_cpu_snapshot(pids)
    revoked = rng.sample(sorted(users), options.revocations)
    for user in revoked:
        posted_to = gateways[rng.randrange(len(gateways))]
        result.cutoff_ms.append(await revoke(replicas.session, posted_to, replicas.admin,
                                             users[user]))  # fmt: skip
        await asyncio.sleep(options.pause)
    use = procfs.cpu_between(cpu_before, procfs.take_cpu_snapshot(pids))
    ours = sum(v for k, v in use.seconds.items() if k != "postgres")
    result.machine_busy = round(use.machine_busy, 3)
    result.others_share = round(use.other_share(ours), 3)
    result.gc_pauses_ms = [gc_pauses(g.log, revoking_from) for g in gateways]
    return revoked


async def hold_and_revoke(replicas: Replicas, options: argparse.Namespace, result: Result) -> None:
    """Hold every stream, measure the replicas holding them, revoke, check the rest."""
    gateways = replicas.gateways
    rss_before = [procfs.rss_kib(g.pid) for g in gateways]
    users = make_users(options)
    everything = [s for streams in users.values() for s in streams]
    print(f"{len(gateways)} gateways: opening {len(everything)} streams", file=sys.stderr,
          flush=True)  # fmt: skip
    connections = ConnectionSampler(replicas.redis, [g.pid for g in gateways])
    async with asyncio.TaskGroup() as group:
        sampling = group.create_task(connections.run())
        holding = await open_all(replicas, everything, group, result)
        # The benchmark's own full collections (10,000 connections' objects) would stop it
        # observing the cuts: the replicas' policy (gateway/garbage.py) here too.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*gc.get_threshold()[:2], NEVER)
        await measure_holding(gateways, everything, rss_before, result)
        print(f"  {result.held} held in {result.seconds_to_hold:.0f} s; revoking",
              file=sys.stderr, flush=True)  # fmt: skip
        revoked = await revoke_some(replicas, users, options, result)
        sampling.cancel()
        result.redis_connections = connections.most
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
    parser.add_argument("--keep-logs", action="store_true", help="keep the replicas' logs")
    options = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        result = asyncio.run(benchmark(options, workdir))
    except BaseException:
        print(f"stopped: servers stopped, Redis keys deleted; logs kept in {workdir}",
              file=sys.stderr)  # fmt: skip
        raise
    print(render(result))
    if options.json is not None:
        options.json.write_text(json.dumps(asdict(result), indent=2) + "\n")
    if options.keep_logs:
        print(f"logs kept in {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
