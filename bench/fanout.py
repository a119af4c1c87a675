"""Held long-polls: what each costs a proxy in memory, and how fast one change releases them all.

The client side runs in its own process on the load core (`python -m bench.fanout --client`):
it opens `count` live long-polls through the proxy, each request with one of a hundred users'
tokens, and reports when each answer's first bytes came (or that none came). The measuring side
waits until the upstream holds them all, reads the proxy's resident memory, releases every poll
with one `POST /_change` to the upstream, and reads the client's times against that moment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import jwt

from bench.stack import LOAD_CPU, SECRET, Server, pinned

CLIENT_WAITS = 90  # seconds for answers once every poll is sent (60 to be held, then the change)
LIVE_QUERY = "table={table}&offset=1_0&handle=1795968529-1&live=true&cursor=0"


@dataclass(frozen=True)
class Fanout:
    held: int
    rss_per_held: float  # bytes
    p50: float  # seconds from the change to an answer
    p99: float
    max: float
    answered: int  # with a 200
    others: dict[str, int] = field(default_factory=dict)  # other outcomes: status, closed, ...


def tokens(users: int = 100) -> list[str]:
    now = int(time.time())
    return [jwt.encode({"sub": f"user-{n}", "tid": "acme", "role": "member", "iat": now,
                        "exp": now + 3600}, SECRET) for n in range(users)]  # fmt: skip


class _Poll(asyncio.Protocol):
    """One held long-poll on a raw socket: the client must cost far less than the proxy it
    measures, so it only notes when the answer's first bytes arrive, and what they were."""

    def __init__(self, request: bytes, done: asyncio.Future[tuple[str, float]]) -> None:
        self.request, self.done = request, done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if not self.done.done():
            self.done.set_result((data[9:12].decode(errors="replace"), time.time()))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(("closed", time.time()))


async def _client(url: str, count: int, within: float) -> dict[str, list[float]]:
    """Answer times by outcome: a status, `closed` (no answer), `refused` (no connection) or
    `unanswered` (still open after `within` seconds)."""
    keys = tokens()
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    outcomes: dict[str, list[float]] = {}
    waits = []
    for n in range(count):
        request = (f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                   f"Authorization: Bearer {keys[n % len(keys)]}\r\n\r\n").encode()  # fmt: skip
        done: asyncio.Future[tuple[str, float]] = loop.create_future()
        try:
            await loop.create_connection(
                lambda r=request, d=done: _Poll(r, d),  # type: ignore[misc]
                parts.hostname or "127.0.0.1", parts.port or 80,
            )  # fmt: skip
        except OSError:
            done.set_result(("refused", time.time()))
        waits.append(done)
    await asyncio.wait(waits, timeout=within)
    for done in waits:
        outcome, at = done.result() if done.done() else ("unanswered", 0.0)
        outcomes.setdefault(outcome, []).append(at)
    return outcomes


def _upstream_held(upstream: Server) -> int:
    with urllib.request.urlopen(f"{upstream.url}/_stats", timeout=5) as answer:  # noqa: S310
        return int(json.loads(answer.read())["held"])


def measure(target: Server, upstream: Server, count: int, table: str) -> Fanout:
    """Hold `count` polls through `target`; release them with one change; report."""
    time.sleep(0.5)
    before = target.rss()
    url = f"{target.url}/v1/shape?{LIVE_QUERY.format(table=table)}"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "answers.json"
        command = [sys.executable, "-m", "bench.fanout", "--client", url, "--count", str(count),
                   "--out", str(out)]  # fmt: skip
        client = subprocess.Popen(pinned(command, LOAD_CPU))
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
        if client.wait(CLIENT_WAITS + 60) != 0:
            raise RuntimeError(f"the long-poll client exited with {client.returncode}")
        outcomes: dict[str, list[float]] = json.loads(out.read_text())
    latencies = sorted(t - released_at for t in outcomes.pop("200", []))
    return Fanout(
        held=held,
        rss_per_held=(during - before) / max(held, 1),
        p50=statistics.median(latencies) if latencies else 0.0,
        p99=latencies[int(len(latencies) * 0.99)] if latencies else 0.0,
        max=latencies[-1] if latencies else 0.0,
        answered=len(latencies),
        others={outcome: len(times) for outcome, times in outcomes.items()},
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--client", metavar="URL", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import uvloop  # noqa: PLC0415 - the `speed` extra

    args.out.write_text(json.dumps(uvloop.run(_client(args.client, args.count, CLIENT_WAITS))))


if __name__ == "__main__":
    main()
