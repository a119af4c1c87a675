"""How often stock clients of one shape ask for the very same live request at once: the share a
collapsing gateway could serve with one upstream request, in SSE mode and with long-polls.

    python -m bench.sse_sharing                      # 20 clients, 40 s, a change every 2 s
    python -m bench.sse_sharing --clients 50 --seconds 120 --sse-timeout 60

The real @electric-sql/client (tests/client, `make npm`) runs `--clients` ShapeStreams, each
for another member of one tenant (the same rewritten upstream request), started over `--spread`
seconds, through `shape-gateway serve` to the Electric imitation (electric_imitation/) on PostgreSQL
(DATABASE_URL, or the tests' default), while a row is inserted every `--interval` seconds.
Every live request a client makes is noted with its query; it is joinable when another client's
live request with the identical query (offset, handle, cursor and all) is in flight as it
starts (until its client's next request) and no change came since that one started. The
gateway runs with its defaults (collapsing on); what it did is read from its /metrics at the end:
the client requests it answered through an upstream exchange (snapshots included), the upstream
requests it sent, and the joins. Needs PostgreSQL and Node.js; not part of `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp
import jwt
import psycopg

from bench.stack import ROOT, SECRET, free_port

DATABASE_URL: Final = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
ELECTRIC_SECRET: Final = "bench-electric-secret"
DRIVER: Final = ROOT / "tests" / "client" / "sync.mjs"
RULES: Final = """\
version: 1
identity: {{user: sub, tenant: tid, role: role}}
roles: [member]
shapes:
  items:
    table: {schema}.items
    where: "tenant_id = :tenant"
    allow: [member]
"""


@dataclass(frozen=True)
class LiveRequest:
    client: int
    started: float
    key: tuple[tuple[str, str], ...]  # the query as the client sent it
    offset: str


@dataclass(frozen=True)
class Sharing:
    mode: str
    requests: int
    joinable: int  # another client's identical request was in flight as it started
    distinct: int  # distinct queries among the requests
    distinct_offsets: int
    through: int  # the gateway's client requests answered through an exchange (all, not live only)
    sent: int  # the upstream requests it sent
    joins: int  # the client requests that joined another's exchange

    @property
    def upstream_if_joined(self) -> int:
        return self.requests - self.joinable


def joinable(requests: list[LiveRequest], changes: list[float], ended: float) -> int:
    """Requests that found another client's identical request in flight when they started,
    with no change since that one started (an SSE stream that has sent a change is past it)."""
    by_client: dict[int, list[LiveRequest]] = {}
    for request in sorted(requests, key=lambda r: r.started):
        by_client.setdefault(request.client, []).append(request)
    spans: list[tuple[LiveRequest, float]] = []
    for own in by_client.values():
        ends = [r.started for r in own[1:]] + [ended]
        spans += zip(own, ends, strict=True)
    count = 0
    for request in requests:
        if any(other.client != request.client and other.key == request.key
               and other.started <= request.started < end
               and not any(other.started < c <= request.started for c in changes)
               for other, end in spans):  # fmt: skip
            count += 1
    return count


def _environment() -> dict[str, str]:
    ours = ("JWT_", "GATEWAY_", "ELECTRIC_", "REDIS_")
    return {name: value for name, value in os.environ.items() if not name.startswith(ours)}


async def _serving(port: int, process: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(20):
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"a server exited with {process.returncode}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            return


COUNTERS: Final = {
    "through": "shape_gateway_upstream_client_requests_total",
    "sent": "shape_gateway_upstream_requests_total",
    "joins": "shape_gateway_upstream_joins_total",
}


async def _counters(url: str) -> dict[str, int]:
    """The gateway's exchange counters, from its /metrics (0 for one it does not report)."""
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as response:
        text = await response.text()
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        values[name] = value
    return {field: int(float(values.get(name, "0"))) for field, name in COUNTERS.items()}


@contextlib.asynccontextmanager
async def _process(*command: str, env: dict[str, str], log: Path) -> AsyncIterator[
    asyncio.subprocess.Process
]:  # fmt: skip
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=output, stderr=output, cwd=ROOT
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


def _token(user: str) -> str:
    now = int(time.time())
    claims = {"sub": user, "tid": "acme", "role": "member", "iat": now, "exp": now + 3600}
    return jwt.encode(claims, SECRET)


async def _client(
    number: int, url: str, *, live_sse: bool, delay: float, until: float,
    requests: list[LiveRequest],
) -> None:  # fmt: skip
    await asyncio.sleep(delay)
    config = {"url": f"{url}/v1/shape", "table": "items", "token": _token(f"user-{number}"),
              "liveSse": live_sse}  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        "node", str(DRIVER), json.dumps(config),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        async with asyncio.timeout(max(until - time.monotonic(), 0.1)):
            while line := await process.stdout.readline():
                event = json.loads(line)
                if event["kind"] == "request" and event["live"]:
                    params = event["params"]
                    requests.append(LiveRequest(number, time.monotonic(),
                                                tuple(sorted(params.items())),
                                                params.get("offset", "")))  # fmt: skip
    except TimeoutError:
        pass
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def _changes(schema: str, interval: float, until: float, times: list[float]) -> None:
    async with await psycopg.AsyncConnection.connect(DATABASE_URL, autocommit=True) as db:
        row = 100
        while time.monotonic() < until - interval:
            await asyncio.sleep(interval)
            row += 1
            await db.execute(
                f'INSERT INTO "{schema}".items VALUES (%s, %s, %s)',  # noqa: S608 - our schema
                (row, "acme", f"item {row}"),
            )
            times.append(time.monotonic())


async def measure(args: argparse.Namespace, live_sse: bool) -> Sharing:
    schema = f"bench_sse_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(DATABASE_URL, autocommit=True) as db:
        await db.execute(f'CREATE SCHEMA "{schema}"')
        await db.execute(
            f'CREATE TABLE "{schema}".items (id int PRIMARY KEY, tenant_id text, title text)'
        )
        for row in range(1, 11):
            await db.execute(f'INSERT INTO "{schema}".items VALUES (%s, %s, %s)',  # noqa: S608
                             (row, "acme", f"item {row}"))  # fmt: skip
    try:
        with tempfile.TemporaryDirectory(prefix="shape-gateway-sse-sharing-") as tmp:
            return await _run(Path(tmp), schema, args, live_sse)
    finally:
        async with await psycopg.AsyncConnection.connect(DATABASE_URL, autocommit=True) as db:
            await db.execute(f'DROP SCHEMA "{schema}" CASCADE')


async def _run(tmp: Path, schema: str, args: argparse.Namespace, live_sse: bool) -> Sharing:
    electric_port, gateway_port = free_port(), free_port()
    rules = tmp / "rules.yaml"
    rules.write_text(RULES.format(schema=schema))
    electric = [sys.executable, "-m", "electric_imitation", "--port", str(electric_port),
                "--dsn", DATABASE_URL, "--secret", ELECTRIC_SECRET,
                "--sse-timeout", str(args.sse_timeout)]  # fmt: skip
    gateway = [sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1",
               "--port", str(gateway_port), "--rules", str(rules),
               "--upstream", f"http://127.0.0.1:{electric_port}"]  # fmt: skip
    env = _environment() | {"JWT_SECRET": SECRET, "ELECTRIC_SECRET": ELECTRIC_SECRET,
                            "LOG_LEVEL": "warning"}  # fmt: skip
    async with (
        _process(*electric, env=_environment(), log=tmp / "electric.log") as upstream,
        _process(*gateway, env=env, log=tmp / "gateway.log") as proxy,
    ):
        await _serving(electric_port, upstream)
        await _serving(gateway_port, proxy)
        url = f"http://127.0.0.1:{gateway_port}"
        requests: list[LiveRequest] = []
        changes: list[float] = []
        until = time.monotonic() + args.seconds
        spread = random.Random(args.seed)
        await asyncio.gather(
            _changes(schema, args.interval, until, changes),
            *(_client(n, url, live_sse=live_sse, delay=spread.uniform(0, args.spread),
                      until=until, requests=requests) for n in range(args.clients)),
        )  # fmt: skip
        counters = await _counters(url)
    if os.environ.get("SSE_SHARING_DUMP"):
        for r in sorted(requests, key=lambda r: r.started):
            print(r.client, round(r.started - until, 2), dict(r.key), file=sys.stderr)
    return Sharing(
        mode="SSE" if live_sse else "long-poll",
        requests=len(requests),
        joinable=joinable(requests, changes, until),
        distinct=len({r.key for r in requests}),
        distinct_offsets=len({r.offset for r in requests}),
        **counters,
    )


def render(results: list[Sharing], args: argparse.Namespace) -> str:
    lines = [
        f"{args.clients} stock clients of one tenant on one shape, started over {args.spread:g} s,"
        f" {args.seconds:g} s, a change every {args.interval:g} s, SSE streams end after "
        f"{args.sse_timeout:g} s",
        f"{'mode':<11}{'live requests':>15}{'joinable':>10}{'share':>8}"
        f"{'distinct queries':>18}{'offsets':>9}{'upstream if joined':>20}",
    ]
    for r in results:
        share = r.joinable / r.requests if r.requests else 0.0
        lines.append(f"{r.mode:<11}{r.requests:>15}{r.joinable:>10}{share:>8.0%}{r.distinct:>18}"
                     f"{r.distinct_offsets:>9}{r.upstream_if_joined:>20}")  # fmt: skip
    lines.append("the gateway (collapsing on), every request (snapshots too):")
    lines += [f"  {r.mode}: {r.through} client requests through an upstream exchange, "
              f"{r.sent} sent upstream, {r.joins} joined another's" for r in results]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--spread", type=float, default=5.0, help="clients start over this")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between changes")
    parser.add_argument("--sse-timeout", type=float, default=20.0, help="Electric's: 60")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    async def both() -> list[Sharing]:
        return [await measure(args, live_sse=True), await measure(args, live_sse=False)]

    print(render(asyncio.run(both()), args))


if __name__ == "__main__":
    main()
