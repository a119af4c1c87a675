"""Revocation cut-off latency across replicas sharing one Redis: how long after an app posts
`session.revoked` does that user's held long-poll end with 401 `session_revoked`?

Run from the repository root: `python -m bench.revocation [--held N] [--revocations N]
[--replicas N] [--json PATH]` (~15 s with the defaults). It creates a schema of two
tenants' tasks, starts our fake Electric and `--replicas` gateways (one Redis prefix of their
own) as subprocesses, and from this process:

1. holds `--held` live long-polls spread over the replicas, one per user (`u0`, `u1`, ...,
   admins of one tenant sharing one shape), renewing any the upstream answers at its 20 s
   timeout, as a client does;
2. revokes `--revocations` of those users one at a time: `POST /admin/revocations` to a random
   replica, then waits for that user's held long-poll to answer, and sends the user's next
   request to every replica;
3. checks nothing else was cut (the other polls stay held until one insert wakes them all),
   and reads each replica's `/metrics` and `revocation_applied` log lines.

Everything is torn down at the end, on errors and on Ctrl-C: processes, schema, Redis keys.
See bench/README.md for how to read the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from yarl import URL

from bench import procfs
from bench.held import wait_until_held
from bench.http import DEFAULT_DATABASE_URL, machine
from bench.revocation_report import (
    REVOKED,
    Cut,
    ReplicaMetrics,
    Result,
    parse_metrics,
    parse_replica_log,
    render,
)
from bench.services import (
    LONG_POLL_TIMEOUT,
    TENANT,
    Stack,
    created_schema,
    electric_argv,
    electric_url,
    gateway_argv,
    gateway_env,
    gateway_url,
    rules_yaml,
    running,
)
from bench.targets import get_body, held_requests, live_url_at_head

DEFAULT_REDIS_URL: Final = "redis://127.0.0.1:6379/0"
REDIS_PREFIX: Final = "bench-revocation-"  # then the creating PID and a random suffix
ROWS: Final = 20  # per tenant: the snapshot each replica syncs once
WAVE: Final = 100  # polls opened together, then WAVE_INTERVAL seconds until the next wave
WAVE_INTERVAL: Final = 0.05
HELD_FOR_AT_LEAST: Final = 1.0  # a poll is revoked only once held this long ...
RENEWS_WITHIN: Final = 3.0  # ... and not this close to the upstream's timeout
CUT_TIMEOUT: Final = 5.0  # seconds to wait for a revoked poll to answer before giving up
REFUSED_WITHIN: Final = 1.0  # seconds the next requests may take to be refused everywhere
WAKE_TIMEOUT: Final = 15.0  # seconds for the held polls to answer the waking insert
READY_TIMEOUT: Final = 15.0
RUN_TIMEOUT: Final = 300.0  # the whole benchmark, whatever happens
CHANGE_MARKER: Final = b'"operation":"insert"'


@dataclass(frozen=True, slots=True)
class Options:
    held: int
    revocations: int
    replicas: int
    max_seconds: float  # the revocation phase's cap
    seed: int | None
    database_url: str
    redis_url: str
    json_path: Path | None
    keep_logs: bool
    gc_probe: bool  # run the replicas under bench/gc_probe.py


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.revocation",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--held", type=int, default=1000, help="long-polls to hold (1000)")
    parser.add_argument("--revocations", type=int, default=200,
                        help="users to revoke, one at a time (200)")  # fmt: skip
    parser.add_argument("--replicas", type=int, default=3, help="gateway processes (3)")
    parser.add_argument("--max-seconds", type=float, default=60.0,
                        help="stop revoking after this long (60)")  # fmt: skip
    parser.add_argument("--seed", type=int, help="for the random users and replicas")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the servers' logs (deleted after a successful run)")  # fmt: skip
    parser.add_argument("--gc-probe", action="store_true",
                        help="log the replicas' GC pauses (bench/gc_probe.py)")  # fmt: skip
    args = parser.parse_args(argv)
    if min(args.held, args.revocations, args.replicas, args.max_seconds) <= 0:
        parser.error("--held, --revocations, --replicas and --max-seconds must be > 0")
    if args.revocations >= args.held:
        parser.error("--revocations must be below --held: the polls left are the control")
    return Options(
        held=args.held,
        revocations=args.revocations,
        replicas=args.replicas,
        max_seconds=args.max_seconds,
        seed=args.seed,
        database_url=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
        redis_url=os.environ.get("REDIS_URL", DEFAULT_REDIS_URL),
        json_path=args.json,
        keep_logs=args.keep_logs,
        gc_probe=args.gc_probe,
    )


# --- Redis: a prefix of our own, its keys deleted at the end -------------------------------


async def _delete_matching(client: aioredis.Redis, pattern: str) -> int:
    keys = [key async for key in client.scan_iter(match=pattern, count=1000)]
    for start in range(0, len(keys), 1000):
        await client.unlink(*keys[start : start + 1000])
    return len(keys)


async def _delete_orphaned_prefixes(client: aioredis.Redis) -> None:
    """Keys of benchmarks whose process is gone (SIGKILL skips our cleanup), as with schemas."""
    prefixes = {str(k).split(":", 1)[0] async for k in client.scan_iter(match=f"{REDIS_PREFIX}*")}
    for prefix in _orphaned(prefixes):
        await _delete_matching(client, f"{prefix}:*")


def _orphaned(prefixes: Iterable[str]) -> list[str]:
    """The prefixes whose creating process (its PID is in the name) is gone."""
    pids = {p: p.removeprefix(REDIS_PREFIX).split("-", 1)[0] for p in prefixes}
    return [p for p, pid in pids.items() if pid.isdigit() and not Path(f"/proc/{pid}").exists()]


@contextlib.asynccontextmanager
async def redis_prefix(url: str) -> AsyncIterator[tuple[aioredis.Redis, str]]:
    """A fresh GATEWAY_REDIS_PREFIX; every key under it is deleted at the end. Leave this block
    only once the gateways are stopped: a running replica restores a stream it sees vanish."""
    client: aioredis.Redis = aioredis.Redis.from_url(
        url, decode_responses=True, socket_connect_timeout=2, socket_timeout=10
    )
    try:
        try:
            await client.ping()
        except (RedisError, OSError) as error:
            raise RuntimeError(f"Redis at {url} is unreachable ({error}); set REDIS_URL") from None
        await _delete_orphaned_prefixes(client)
        prefix = f"{REDIS_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        try:
            yield client, prefix
        finally:
            await _delete_matching(client, f"{prefix}:*")
            # Again: a killed run's gateways may have still been stopping at the first pass.
            await _delete_orphaned_prefixes(client)
    finally:
        await client.aclose()


# --- the held polls ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ending:
    """How a user's long-poll ended (one that is renewed has not ended)."""

    status: int  # 0: the request failed (error says how)
    error: str | None  # the body's `error` code, or the exception
    at: float  # time.perf_counter() when answered
    woken: bool = False  # 200 with the change


@dataclass(slots=True)
class Client:
    """One user holding one live long-poll on one replica."""

    user: str
    replica: int
    token: str
    live_url: URL
    ended: asyncio.Future[Ending]
    sent_at: float = 0.0  # perf_counter() when the current poll was sent
    renewals: int = 0  # polls the upstream answered at its timeout, sent again

    def revocable(self, now: float) -> bool:
        """Held long enough to be held upstream, and not about to time out there."""
        held_for = now - self.sent_at
        return (
            not self.ended.done()
            and self.sent_at > 0
            and HELD_FOR_AT_LEAST <= held_for <= LONG_POLL_TIMEOUT - RENEWS_WITHIN
        )


@dataclass(slots=True)
class Holding:
    renewing: bool = True  # answer a timeout with the next poll, as a client does


def error_code(body: bytes) -> str | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return str(document.get("error")) if isinstance(document, dict) else None


async def poll(
    session: aiohttp.ClientSession, client: Client, index: int, holding: Holding
) -> None:
    """Hold the client's live request until it ends with something other than a timeout."""
    await asyncio.sleep(index // WAVE * WAVE_INTERVAL)  # clients arrive in waves
    headers = {"Authorization": f"Bearer {client.token}", "Accept-Encoding": "identity"}
    while True:
        client.sent_at = time.perf_counter()
        try:
            async with session.get(client.live_url, headers=headers) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            ending = Ending(0, f"{type(error).__name__}: {error}", time.perf_counter())
            client.ended.set_result(ending)
            return
        at = time.perf_counter()
        woken = CHANGE_MARKER in body
        if status == 200 and not woken and holding.renewing:
            client.renewals += 1  # the upstream's timeout: poll again (the fake needs no cursor)
            continue
        client.ended.set_result(Ending(status, error_code(body), at, woken))
        return


# --- one revocation ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Replicas:
    """The running gateways, as Stacks (one per replica, sharing the fake and the session)."""

    stacks: list[Stack]
    admin_token: str
    catch_up: list[URL]  # a non-live request at the shape's head, per replica

    async def publish(self, replica: int, user: str) -> tuple[int, str | None]:
        stack = self.stacks[replica]
        event = {"type": "session.revoked", "user": user}
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        url = f"{stack.gateway.url}/admin/revocations"
        async with stack.session.post(url, json=event, headers=headers) as response:
            body = await response.read()
            status = response.status
        document = json.loads(body) if status == 202 else {}
        return status, document.get("id")

    async def next_request(self, replica: int, token: str) -> str:
        status, body, _ = await get_body(
            self.stacks[replica], str(self.catch_up[replica]), {"Authorization": f"Bearer {token}"}
        )
        return f"{status} {error_code(body)}"


def _all_refused(answers: tuple[str, ...]) -> bool:
    return all(answer == REVOKED for answer in answers)


async def refused_everywhere(
    replicas: Replicas, token: str
) -> tuple[tuple[str, ...], float | None]:
    """The next request on every replica at once, and how long until all refuse it: 0 when
    they did at once, None when not within REFUSED_WITHIN (retried every 20 ms until then)."""
    indexes = range(len(replicas.stacks))

    async def answers() -> tuple[str, ...]:
        return tuple(await asyncio.gather(*(replicas.next_request(i, token) for i in indexes)))

    started = time.perf_counter()
    first = await answers()
    if _all_refused(first):
        return first, 0.0
    while time.perf_counter() - started <= REFUSED_WITHIN:
        await asyncio.sleep(0.02)
        if _all_refused(await answers()):
            return first, time.perf_counter() - started
    return first, None


async def revoke_one(replicas: Replicas, client: Client, posted_to: int) -> Cut:
    """Post the user's revocation to one replica; wait for the user's held poll to answer."""
    started_at, started = time.time(), time.perf_counter()
    post_status, event_id = await replicas.publish(posted_to, client.user)
    post_seconds = time.perf_counter() - started
    ending: Ending | None = None
    if post_status == 202:
        with contextlib.suppress(TimeoutError):
            ending = await asyncio.wait_for(
                asyncio.shield(client.ended), CUT_TIMEOUT - post_seconds
            )
    next_answers, refused_after = await refused_everywhere(replicas, client.token)
    return Cut(
        user=client.user,
        posted_to=posted_to,
        held_on=client.replica,
        started_at=started_at,
        post_status=post_status,
        event_id=event_id,
        post_seconds=post_seconds,
        seconds=None if ending is None else ending.at - started,
        answer="none" if ending is None else f"{ending.status} {ending.error}",
        next_answers=next_answers,
        refused_everywhere_after=refused_after,
    )


async def revoke_many(
    replicas: Replicas, clients: list[Client], options: Options, rng: random.Random
) -> list[Cut]:
    """Revoke users one at a time, each chosen among the polls surely held upstream."""
    cuts: list[Cut] = []
    revoked: set[str] = set()
    deadline = time.perf_counter() + options.max_seconds
    while len(cuts) < options.revocations and time.perf_counter() < deadline:
        now = time.perf_counter()
        candidates = [c for c in clients if c.user not in revoked and c.revocable(now)]
        if not candidates:
            await asyncio.sleep(0.05)  # all are being renewed right now: rare, and brief
            continue
        client = rng.choice(candidates)
        revoked.add(client.user)
        cuts.append(await revoke_one(replicas, client, rng.randrange(len(replicas.stacks))))
    return cuts


# --- the run -------------------------------------------------------------------------------


def replica_argv(rules: Path, upstream: str, gc_probe: bool) -> list[str]:
    """`shape-gateway serve ...`, or the same arguments under bench/gc_probe.py."""
    argv = gateway_argv(rules, upstream, None)
    if not gc_probe:
        return argv
    return [sys.executable, "-m", "bench.gc_probe", *argv[argv.index("serve") :]]


async def read_metrics(stack: Stack) -> ReplicaMetrics:
    status, body, _ = await get_body(stack, f"{stack.gateway.url}/metrics", {})
    if status != 200:
        raise RuntimeError(f"{stack.gateway.name} /metrics answered {status}")
    return parse_metrics(body.decode())


def redis_server_pid() -> int | None:
    """The local redis-server's PID, for its CPU (None if it runs elsewhere)."""
    for entry in procfs.PROC.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "redis-server":
                    return int(entry.name)
    return None


async def wait_ready(stack: Stack) -> None:
    """/readyz 200: the replica has read the revocation stream and follows it."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        status, body, _ = await get_body(stack, f"{stack.gateway.url}/readyz", {})
        if status == 200:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{stack.gateway.name} not ready: {status} {body[:300]!r}")
        await asyncio.sleep(0.1)


async def hold_and_revoke(
    replicas: Replicas, options: Options, result: Result, rng: random.Random
) -> None:
    """Hold the polls, revoke, check the rest, release them; every poll is awaited."""
    stacks = replicas.stacks
    live = [URL(await live_url_at_head(stack), encoded=True) for stack in stacks]
    loop = asyncio.get_running_loop()
    clients = [
        Client(f"u{i}", i % len(stacks), stacks[0].token(f"u{i}"), live[i % len(stacks)],
               loop.create_future())
        for i in range(options.held)
    ]  # fmt: skip
    result.held_per_replica = [sum(c.replica == r for c in clients) for r in range(len(stacks))]
    holding = Holding()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=LONG_POLL_TIMEOUT + 30)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        asyncio.TaskGroup() as group,
    ):
        for index, client in enumerate(clients):
            group.create_task(poll(session, client, index, holding))
        held, result.seconds_to_hold = await wait_until_held(
            stacks[0], options.held, within=LONG_POLL_TIMEOUT - 8
        )
        result.held_by_fake = held
        print(f"  {held} of {options.held} held; revoking", file=sys.stderr, flush=True)
        pids = {f"gateway #{i}": s.gateway.pid for i, s in enumerate(stacks)}
        pids |= {"electric": stacks[0].electric.pid, "bench": os.getpid()}
        if (redis_pid := redis_server_pid()) is not None:
            pids["redis"] = redis_pid
        idle, idle_from = procfs.take_cpu_snapshot(pids), time.perf_counter()
        await asyncio.sleep(HELD_FOR_AT_LEAST)  # what merely holding them costs, meanwhile
        before, started = procfs.take_cpu_snapshot(pids), time.perf_counter()
        result.cpu_holding = procfs.cpu_between(idle, before)
        result.holding_seconds = started - idle_from
        result.phase_from = time.time()
        result.cuts = await revoke_many(replicas, clients, options, rng)
        result.phase_seconds = time.perf_counter() - started
        result.cpu = procfs.cpu_between(before, procfs.take_cpu_snapshot(pids))
        await check_the_rest(stacks[0], clients, result, holding)
    result.renewals = sum(c.renewals for c in clients)


async def held_settled(stack: Stack, expected: int, within: float = 2.0) -> int:
    """The fake's held requests once they equal `expected` (it notices a connection the
    gateway closed within its 100 ms poll), or whatever they are after `within` seconds."""
    deadline = time.monotonic() + within
    held = await held_requests(stack)
    while held != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        held = await held_requests(stack)
    return held


async def check_the_rest(
    stack: Stack, clients: list[Client], result: Result, holding: Holding
) -> None:
    """No other poll was cut: all still held, and all woken by one insert."""
    revoked = {c.user for c in result.cuts}
    others = [c for c in clients if c.user not in revoked]
    result.collateral = dict(
        Counter(f"{c.ended.result().status} {c.ended.result().error}" for c in others
                if c.ended.done())
    )  # fmt: skip
    result.expected_after = sum(not c.ended.done() for c in others)
    result.held_after = await held_settled(stack, result.expected_after)
    holding.renewing = False
    woken_at = time.perf_counter()
    stack.schema.insert_task(10_000_000, TENANT)  # grows the shape: every held poll wakes
    pending = [c.ended for c in others if not c.ended.done()]
    done, _ = await asyncio.wait(pending, timeout=WAKE_TIMEOUT) if pending else (set(), set())
    endings = [f.result() for f in done]
    result.released = dict(
        Counter("woken by the change" if e.woken else f"{e.status} {e.error}" for e in endings)
    )
    if len(done) < len(pending):
        result.released["still held"] = len(pending) - len(done)
    result.release_seconds = max((e.at for e in endings), default=woken_at) - woken_at


async def benchmark(options: Options, workdir: Path) -> Result:
    rng = random.Random(options.seed)
    result = Result(machine=machine(), settings={})
    jwt_secret, electric_secret = secrets.token_urlsafe(48), secrets.token_hex(16)
    admin_token = secrets.token_urlsafe(32)
    async with contextlib.AsyncExitStack() as exits:
        redis, prefix = await exits.enter_async_context(redis_prefix(options.redis_url))
        result.settings = {
            "held": options.held,
            "revocations": options.revocations,
            "replicas": options.replicas,
            "max_seconds": options.max_seconds,
            "seed": options.seed,
            "long_poll_timeout": LONG_POLL_TIMEOUT,
            "redis": str((await redis.info("server"))["redis_version"]),
            "redis_prefix": prefix,
            "publish": "POST /admin/revocations",
            "gc_probe": options.gc_probe,
        }
        schema = exits.enter_context(created_schema(options.database_url, ROWS))
        rules = workdir / "rules.yaml"
        rules.write_text(rules_yaml(schema.name))
        electric = await exits.enter_async_context(
            running(
                "fake Electric",
                electric_argv(options.database_url, electric_secret, LONG_POLL_TIMEOUT),
                os.environ,
                workdir / "electric.log",
                electric_url,
            )
        )
        env = gateway_env(jwt_secret, electric_secret)
        env.update(REDIS_URL=options.redis_url, GATEWAY_REDIS_PREFIX=prefix,
                   GATEWAY_ADMIN_TOKEN=admin_token)  # fmt: skip
        gateways = [
            await exits.enter_async_context(
                running(f"gateway #{n}", replica_argv(rules, electric.url, options.gc_probe),
                        env, workdir / f"gateway-{n}.log", gateway_url)
            )
            for n in range(options.replicas)
        ]  # fmt: skip
        session = await exits.enter_async_context(aiohttp.ClientSession())
        stacks = [Stack(schema, electric, g, session, workdir, jwt_secret, ROWS) for g in gateways]
        for stack in stacks:
            await wait_ready(stack)
        print(f"{len(gateways)} gateways ({', '.join(g.url for g in gateways)}) -> fake Electric "
              f"{electric.url}; Redis prefix {prefix}; logs in {workdir}",
              file=sys.stderr, flush=True)  # fmt: skip
        catch_up = [URL(await live_url_at_head(s), encoded=True) for s in stacks]
        catch_up = [
            u.with_query({k: v for k, v in u.query.items() if k != "live"}) for u in catch_up
        ]
        replicas = Replicas(stacks, admin_token, catch_up)
        await hold_and_revoke(replicas, options, result, rng)
        result.metrics = [await read_metrics(stack) for stack in stacks]
    revoked = {cut.user for cut in result.cuts}
    result.logs = [parse_replica_log(g.log, revoked) for g in gateways]  # complete: all stopped
    return result


async def main_async(options: Options, workdir: Path) -> Result:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    async with asyncio.timeout(RUN_TIMEOUT):
        return await benchmark(options, workdir)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-revocation-"))
    try:
        result = asyncio.run(main_async(options, workdir))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(f"interrupted: servers stopped, schema dropped, Redis keys deleted; logs kept in "
              f"{workdir}", file=sys.stderr)  # fmt: skip
        return 130
    except Exception:
        print(f"the benchmark failed; servers stopped, schema dropped, Redis keys deleted; logs "
              f"kept in {workdir}", file=sys.stderr)  # fmt: skip
        raise
    print(render(result))
    if options.json_path is not None:
        options.json_path.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    if options.keep_logs:
        print(f"logs kept in {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
