"""Many users of one tenant on one shape: what each proxy costs the upstream, and how fast.

    python -m bench.collapse            # 8,000 held long-polls and SSE streams, a herd of 2,000
    python -m bench.collapse --quick    # 500 and 200: a check that it runs, not figures

Every user's request becomes the same upstream request (the shape is tenant-scoped and the users
share the tenant), which is where a collapsing proxy saves the upstream its work. Targets, in one
run: the gateway (collapsing on, its default), the gateway with GATEWAY_COLLAPSE=off, and nginx
`proxy_pass` (which never collapses). Each measurement starts a fresh upstream and proxy (freed
memory is kept by CPython: a second measurement in one process would look cheaper), pinned as in
bench.compare: the clients on core 0, the upstream and the proxy on core 1.

- fan-out: `count` long-polls held; one change answers them. Upstream requests for that change
  (the live requests the upstream received), p50/p99/max from the change to each client's first
  bytes, and RSS per held poll.
- SSE: `count` streams held; RSS per held stream and the upstream streams they took.
- herd: `herd` users open the shape (`offset=-1`) at once; the upstream takes `--snapshot-delay`
  to start each snapshot, as Electric does. Upstream snapshot requests and p99 from each request
  sent to its answer read whole.
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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from bench.fanout import LIVE_QUERY, tokens
from bench.stack import LOAD_CPU, Server, Stack, pinned

SSE_QUERY: Final = LIVE_QUERY + "&live_sse=true"
SNAPSHOT_QUERY: Final = "table={table}&offset=-1"
HERD_SNAPSHOT_BYTES: Final = 256 * 1024  # one Electric chunk of a tenant's rows
CLIENT_WAITS: Final = 90.0  # seconds for every answer once the requests are sent
TARGETS: Final = ("shape-gateway", "shape-gateway, collapse off", "nginx proxy_pass")


@dataclass(frozen=True)
class Latencies:
    p50: float
    p99: float
    max: float
    answered: int  # with a 200
    others: dict[str, int] = field(default_factory=dict)  # status, closed, refused, unanswered

    @classmethod
    def of(cls, outcomes: dict[str, list[float]]) -> Latencies:
        times = sorted(outcomes.pop("200", []))
        if not times:
            return cls(0.0, 0.0, 0.0, 0, {k: len(v) for k, v in outcomes.items()})
        return cls(statistics.median(times), times[int(len(times) * 0.99)], times[-1],
                   len(times), {k: len(v) for k, v in outcomes.items()})  # fmt: skip


@dataclass(frozen=True)
class Result:
    target: str
    held_polls: int  # connections the proxy held when the change came
    upstream_per_change: int  # live requests the upstream received for those polls
    fanout: Latencies
    rss_per_poll: float  # bytes
    held_streams: int
    upstream_streams: int
    rss_per_stream: float
    herd: int
    upstream_snapshots: int
    herd_latency: Latencies


# The client side: its own process on the load core, raw sockets (far cheaper than the proxy).


class _Exchange(asyncio.Protocol):
    """One request: when its first bytes came and with what status, and when the proxy closed."""

    def __init__(self, request: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.request = request
        self.first: asyncio.Future[tuple[str, float]] = loop.create_future()
        self.closed: asyncio.Future[float] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if not self.first.done():
            self.first.set_result((data[9:12].decode(errors="replace"), time.time()))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.first.done():
            self.first.set_result(("closed", time.time()))
        self.closed.set_result(time.time())


async def _open(url: str, count: int, close: bool, sse: bool) -> list[tuple[float, _Exchange]]:
    """`count` requests on their own connections, each with one of a hundred users' tokens."""
    keys = tokens()
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    opened: list[tuple[float, _Exchange]] = []
    extra = ("Connection: close\r\n" if close else "") + (
        "Accept: text/event-stream\r\n" if sse else ""
    )
    for n in range(count):
        key = keys[n % len(keys)]
        request = (f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                   f"Authorization: Bearer {key}\r\n{extra}\r\n").encode()  # fmt: skip
        exchange = _Exchange(request)
        sent = time.time()
        try:
            await loop.create_connection(
                lambda e=exchange: e,  # type: ignore[misc]
                parts.hostname or "127.0.0.1", parts.port or 80,
            )  # fmt: skip
        except OSError:
            exchange.first.set_result(("refused", sent))
            exchange.closed.set_result(sent)
        opened.append((sent, exchange))
    return opened


async def _client(mode: str, url: str, count: int) -> dict[str, list[float]]:
    """Times by outcome (a status, `closed`, `refused`, `unanswered`): `poll`, when the first
    bytes came; `herd`, how long from sending to the answer read whole. `stream` holds the
    streams until stdin closes, once it has said `held` on stdout (every head received)."""
    opened = await _open(url, count, close=mode == "herd", sse=mode == "stream")
    outcomes: dict[str, list[float]] = {}
    if mode == "stream":
        await asyncio.wait([e.first for _, e in opened], timeout=CLIENT_WAITS)
        print("held", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        for _, exchange in opened:
            status = exchange.first.result()[0] if exchange.first.done() else "unanswered"
            outcomes.setdefault(status, []).append(0.0)
        return outcomes
    waits = [e.closed if mode == "herd" else e.first for _, e in opened]
    await asyncio.wait(waits, timeout=CLIENT_WAITS)
    for sent, exchange in opened:
        if not exchange.first.done() or (mode == "herd" and not exchange.closed.done()):
            outcomes.setdefault("unanswered", []).append(0.0)
            continue
        status, first = exchange.first.result()
        at = exchange.closed.result() - sent if mode == "herd" else first
        outcomes.setdefault(status, []).append(at)
    return outcomes


def _client_command(mode: str, url: str, count: int, out: Path) -> list[str]:
    command = [sys.executable, "-m", "bench.collapse", "--client", mode, "--url", url,
               "--count", str(count), "--out", str(out)]  # fmt: skip
    return pinned(command, LOAD_CPU)


# The measuring side.


def _stats(upstream: Server) -> dict[str, int]:
    with urllib.request.urlopen(f"{upstream.url}/_stats", timeout=5) as answer:  # noqa: S310
        stats = json.loads(answer.read())
    return {"held": int(stats["held"]), **{k: int(v) for k, v in stats["requests"].items()}}


def _client_connections(target: Server) -> int:
    """Connections the proxy has accepted on its port (not the ones it opened upstream)."""
    import psutil  # noqa: PLC0415 - the `speed` extra, as bench.stack

    total = 0
    for pid in target.pids or [target.process.pid]:
        try:
            connections = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:
            continue
        total += sum(1 for c in connections if c.laddr and c.laddr.port == target.port and c.raddr)
    return total


def _settle(target: Server, upstream: Server, count: int, kind: str) -> None:
    """Until the proxy holds `count` clients and the upstream's `kind` requests stopped coming
    (for a second), or a minute passed: every request is then held, joined or waiting."""
    deadline = time.monotonic() + 60
    while _client_connections(target) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    last, since = _stats(upstream)[kind], time.monotonic()
    while time.monotonic() - since < 1.0 and time.monotonic() < deadline:
        time.sleep(0.2)
        now = _stats(upstream)[kind]
        if now != last:
            last, since = now, time.monotonic()


def _start(stack: Stack, target: str, upstream: Server) -> tuple[Server, str]:
    """The proxy under test and the table its URL names (nginx passes it through as it is)."""
    if target == "nginx proxy_pass":
        return stack.nginx(upstream), "x"
    env = {"GATEWAY_COLLAPSE": "off" if target.endswith("collapse off") else "on"}
    return stack.gateway(upstream, env=env), "items"


def fanout(target: str, count: int) -> tuple[int, int, Latencies, float]:
    """Held polls, upstream live requests, latencies after the change, RSS per held poll."""
    with Stack() as stack, tempfile.TemporaryDirectory() as tmp:
        upstream = stack.upstream(hold=CLIENT_WAITS)  # no poll answered but by the change
        proxy, table = _start(stack, target, upstream)
        time.sleep(0.5)
        before, live_before = proxy.rss(), _stats(upstream)["live"]
        out = Path(tmp) / "answers.json"
        url = f"{proxy.url}/v1/shape?{LIVE_QUERY.format(table=table)}"
        client = subprocess.Popen(_client_command("poll", url, count, out))
        _settle(proxy, upstream, count, "live")
        held = _client_connections(proxy)
        time.sleep(0.5)  # let the proxy settle what it allocated for them
        during = proxy.rss()
        live = _stats(upstream)["live"] - live_before
        released_at = time.time()
        change = urllib.request.Request(f"{upstream.url}/_change", method="POST")  # noqa: S310
        with urllib.request.urlopen(change, timeout=30):  # noqa: S310 - ours, on loopback
            pass
        if client.wait(CLIENT_WAITS + 60) != 0:
            raise RuntimeError(f"the long-poll client exited with {client.returncode}")
        outcomes = json.loads(out.read_text())
        answered = {k: [t - released_at for t in v] if k == "200" else v
                    for k, v in outcomes.items()}  # fmt: skip
        early = [t for t in answered.get("200", []) if t < 0]
        if early:  # answered before the change: not a fan-out figure
            answered["200"] = [t for t in answered["200"] if t >= 0]
            answered["before the change"] = early
        return held, live, Latencies.of(answered), (during - before) / max(held, 1)


def streams(target: str, count: int) -> tuple[int, int, float]:
    """Held SSE streams, the upstream streams they took, RSS per held stream."""
    with Stack() as stack, tempfile.TemporaryDirectory() as tmp:
        upstream = stack.upstream(sse_hold=120.0)
        proxy, table = _start(stack, target, upstream)
        time.sleep(0.5)
        before = proxy.rss()
        url = f"{proxy.url}/v1/shape?{SSE_QUERY.format(table=table)}"
        command = _client_command("stream", url, count, Path(tmp) / "streams.json")
        client = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert client.stdout is not None
        assert client.stdin is not None
        client.stdout.readline()  # "held": every stream's head came
        _settle(proxy, upstream, count, "sse")
        held, upstream_streams = _client_connections(proxy), _stats(upstream)["sse"]
        time.sleep(0.5)
        during = proxy.rss()
        client.stdin.close()
        client.wait(60)
        return held, upstream_streams, (during - before) / max(held, 1)


def herd(target: str, count: int, delay: float) -> tuple[int, Latencies]:
    """Upstream snapshot requests for `count` users opening the shape at once; latencies."""
    with Stack() as stack, tempfile.TemporaryDirectory() as tmp:
        upstream = stack.upstream(snapshot_bytes=HERD_SNAPSHOT_BYTES, snapshot_delay=delay)
        proxy, table = _start(stack, target, upstream)
        time.sleep(0.5)
        out = Path(tmp) / "herd.json"
        url = f"{proxy.url}/v1/shape?{SNAPSHOT_QUERY.format(table=table)}"
        client = subprocess.Popen(_client_command("herd", url, count, out))
        if client.wait(CLIENT_WAITS + 60) != 0:
            raise RuntimeError(f"the herd client exited with {client.returncode}")
        return _stats(upstream)["snapshot"], Latencies.of(json.loads(out.read_text()))


def run(count: int, herd_size: int, delay: float, log: Callable[[str], None]) -> list[Result]:
    results = []
    for target in TARGETS:
        held, live, latencies, rss = fanout(target, count)
        log(f"{target}: fan-out done")
        held_streams, upstream_streams, rss_stream = streams(target, count)
        log(f"{target}: SSE done")
        snapshots, herd_latency = herd(target, herd_size, delay)
        log(f"{target}: herd done")
        results.append(Result(target, held, live, latencies, rss, held_streams, upstream_streams,
                              rss_stream, herd_size, snapshots, herd_latency))  # fmt: skip
    return results


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def render(results: list[Result], count: int, herd_size: int) -> str:
    lines = [
        f"fan-out: {count:,} users of one tenant hold long-polls on one shape; one change",
        f"{'target':<30}{'held':>7}{'upstream/change':>17}{'p50':>10}{'p99':>10}{'max':>10}"
        f"{'RSS/poll':>10}  otherwise",
    ]
    for r in results:
        f = r.fanout
        lines.append(f"{r.target:<30}{r.held_polls:>7,}{r.upstream_per_change:>17,}"
                     f"{_ms(f.p50):>10}{_ms(f.p99):>10}{_ms(f.max):>10}"
                     f"{r.rss_per_poll / 1024:>7.1f} KB  {f.others or '-'}")  # fmt: skip
    lines += ["", f"SSE: {count:,} streams held on one shape",
              f"{'target':<30}{'held':>7}{'upstream streams':>17}{'RSS/stream':>12}"]  # fmt: skip
    for r in results:
        lines.append(f"{r.target:<30}{r.held_streams:>7,}{r.upstream_streams:>17,}"
                     f"{r.rss_per_stream / 1024:>9.1f} KB")  # fmt: skip
    lines += ["", f"herd: {herd_size:,} users open the shape at once (offset=-1)",
              f"{'target':<30}{'snapshots':>10}{'p50':>10}{'p99':>10}{'max':>10}"
              "  otherwise"]  # fmt: skip
    for r in results:
        h = r.herd_latency
        lines.append(f"{r.target:<30}{r.upstream_snapshots:>10,}{_ms(h.p50):>10}{_ms(h.p99):>10}"
                     f"{_ms(h.max):>10}  {h.others or '-'}")  # fmt: skip
    gateway = results[0]
    nginx = next(r for r in results if r.target == "nginx proxy_pass")
    lines += [
        "",
        "targets (shape-gateway, collapsing on; one worker):",
        f"  upstream requests per change: {gateway.upstream_per_change:,} (target <= 1 per worker):"
        f" {_met(gateway.upstream_per_change <= 1)}",
        f"  upstream snapshots per herd: {gateway.upstream_snapshots:,} (target <= 1 per worker): "
        f"{_met(gateway.upstream_snapshots <= 1)}",
        f"  fan-out p99 at {count:,}: {_ms(gateway.fanout.p99)} (target < 400 ms; nginx "
        f"{_ms(nginx.fanout.p99)}): {_met(0 < gateway.fanout.p99 < 0.4)}",
        f"  RSS per held long-poll: {gateway.rss_per_poll / 1024:.1f} KB (target <= 12 KB): "
        f"{_met(gateway.rss_per_poll <= 12 * 1024)}",
    ]
    if count < 8000 or herd_size < 2000:
        lines.append("  (a quick run: the targets are set for 8,000 polls and a herd of 2,000)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=8000, help="held polls and SSE streams")
    parser.add_argument("--herd", type=int, default=2000, help="users opening the shape at once")
    parser.add_argument("--quick", action="store_true", help="500 held, a herd of 200")
    parser.add_argument("--snapshot-delay", type=float, default=0.3,
                        help="seconds the upstream takes to start a snapshot")  # fmt: skip
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--client", choices=("poll", "stream", "herd"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        import uvloop  # noqa: PLC0415 - the `speed` extra

        outcomes = uvloop.run(_client(args.client, args.url, args.count))
        args.out.write_text(json.dumps(outcomes))
        return
    count, herd_size = (500, 200) if args.quick else (args.count, args.herd)
    results = run(count, herd_size, args.snapshot_delay, lambda m: print(m, file=sys.stderr))
    print(render(results, count, herd_size))
    if args.json:
        with open(args.json, "w") as out:
            json.dump([asdict(r) for r in results], out, indent=2)


if __name__ == "__main__":
    main()
