"""Held long-polls: what each costs a proxy in memory, and how fast one change releases them all.

The client side runs in its own process on the load core (`python -m bench.fanout --client`):
it opens `count` live long-polls through the proxy, each request with one of a hundred
users' tokens, and reports when each answer completed. The measuring side waits until the
upstream holds them all, reads the proxy's resident memory, releases every poll with one
`POST /_change` to the upstream, and reads the client's completion times against that moment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

import jwt

from bench.stack import LOAD_CPU, SECRET, Server, pinned

LIVE_QUERY = "table={table}&offset=1_0&handle=1795968529-1&live=true&cursor=0"


@dataclass(frozen=True)
class Fanout:
    held: int
    rss_per_held: float  # bytes
    p50: float  # seconds from the change to an answer
    p99: float
    max: float
    answered: int


def tokens(users: int = 100) -> list[str]:
    now = int(time.time())
    return [jwt.encode({"sub": f"user-{n}", "tid": "acme", "role": "member", "iat": now,
                        "exp": now + 3600}, SECRET) for n in range(users)]  # fmt: skip


class _Poll(asyncio.Protocol):
    """One held long-poll on a raw socket: the client must cost far less than the proxy it
    measures, so it only notes when the answer's first bytes arrive."""

    def __init__(self, request: bytes, answered: list[float], done: asyncio.Future[None]) -> None:
        self.request, self.answered, self.done = request, answered, done
        self.seen = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if not self.seen:
            self.seen = True
            if data.startswith(b"HTTP/1.1 200"):
                self.answered.append(time.time())
            if not self.done.done():
                self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _client(url: str, count: int) -> list[float]:
    keys = tokens()
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    answered: list[float] = []
    waits = []
    for n in range(count):
        request = (f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                   f"Authorization: Bearer {keys[n % len(keys)]}\r\n\r\n").encode()  # fmt: skip
        done: asyncio.Future[None] = loop.create_future()
        await loop.create_connection(
            lambda r=request, d=done: _Poll(r, answered, d),  # type: ignore[misc]
            parts.hostname or "127.0.0.1", parts.port or 80,
        )  # fmt: skip
        waits.append(done)
    async with asyncio.timeout(120):
        await asyncio.gather(*waits)
    return answered


def _upstream_held(upstream: Server) -> int:
    with urllib.request.urlopen(f"{upstream.url}/_stats", timeout=5) as answer:  # noqa: S310
        return int(json.loads(answer.read())["held"])


def measure(target: Server, upstream: Server, count: int, table: str) -> Fanout:
    """Hold `count` polls through `target`; release them with one change; report."""
    time.sleep(0.5)
    before = target.rss()
    url = f"{target.url}/v1/shape?{LIVE_QUERY.format(table=table)}"
    command = [sys.executable, "-m", "bench.fanout", "--client", url, "--count", str(count)]
    client = subprocess.Popen(pinned(command, LOAD_CPU), stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while _upstream_held(upstream) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    held = _upstream_held(upstream)
    time.sleep(0.5)  # let the proxy settle what it allocated for them
    during = target.rss()
    released_at = time.time()
    change = urllib.request.Request(f"{upstream.url}/_change", method="POST")  # noqa: S310
    with urllib.request.urlopen(change, timeout=30):  # noqa: S310 - our upstream, on loopback
        pass
    out, _ = client.communicate(timeout=120)
    latencies = sorted(t - released_at for t in json.loads(out))
    if not latencies:
        return Fanout(held, (during - before) / max(held, 1), 0, 0, 0, 0)
    return Fanout(
        held=held,
        rss_per_held=(during - before) / max(held, 1),
        p50=statistics.median(latencies),
        p99=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        max=latencies[-1],
        answered=len(latencies),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--client", metavar="URL", required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()
    import uvloop  # noqa: PLC0415 - the `speed` extra

    print(json.dumps(uvloop.run(_client(args.client, args.count))))


if __name__ == "__main__":
    main()
