"""shape-gateway next to nginx and going direct, in one run, with ratios (docs/performance.md).

    python -m bench.compare                     # 3 rounds of 5 s, 8,000 held long-polls
    python -m bench.compare --rounds 1 --seconds 3 --held 2000 --json out.json

Every target proxies the same in-memory Electric-like upstream (bench/upstream.py): wrk on core
0, the upstream and the proxy under test sharing core 1. Rows:
- direct: wrk straight to the upstream (no proxy at all);
- nginx: `proxy_pass` with buffering off and an upstream keep-alive pool;
- bare aiohttp: JWT verification and where injection, nothing else (bench/bare_proxy.py);
- shape-gateway: the product, audit line and all, with GATEWAY_COLLAPSE=off: every wrk
  connection sends the same URL with the same token, and that catch-up is publicly cacheable, so
  with collapsing on most answers would be replays of a lingering exchange and the row would
  stop measuring proxying;
- shape-gateway + Redis: the same with REDIS_URL (shared limits and revocation), when Redis
  answers at $REDIS_URL or 127.0.0.1:6379;
- shape-gateway, collapsed: the same load with collapsing on (the default), for comparison
  only: the targets are the per-request cost, measured with it off.
`CPU/req` is the target's own CPU time (psutil) over a catch-up run, per request: the proxy's
(nginx: its worker's), or for direct the upstream's. Each figure is the median over the rounds;
rounds alternate the order of the targets. A benchmark reports; it never passes or fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
from dataclasses import asdict, dataclass, field

import redis

from bench.fanout import Fanout, measure, tokens
from bench.stack import Server, Stack
from bench.wrk import Load, run_wrk

SMALL = "/v1/shape?table={table}&offset=1_0&handle=1795968529-1"
LARGE = "/v1/shape?table={table}&offset=-1"
# Every wrk connection sends one URL with one token: with collapsing on, the gateway would
# replay a lingering exchange instead of proxying, so the per-request rows measure it off.
NO_COLLAPSE = {"GATEWAY_COLLAPSE": "off"}
GATEWAY = "shape-gateway (collapse off)"
GATEWAY_REDIS = "shape-gateway + Redis (collapse off)"
COLLAPSED = "shape-gateway, collapsed"
NAME_WIDTH = 38


@dataclass
class Row:
    name: str
    small: list[Load] = field(default_factory=list)
    large: list[Load] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # the target's own CPU per catch-up
    fanout: Fanout | None = None

    def rate(self) -> float:
        return statistics.median(load.requests_per_s for load in self.small)

    def cpu(self) -> float:
        return statistics.median(self.cpu_us)

    def throughput(self) -> float:
        return statistics.median(load.mb_per_s for load in self.large)


def _redis_url() -> str | None:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    with contextlib.suppress(redis.RedisError, OSError):
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        client.ping()
        client.close()
        return url
    return None


def run(rounds: int, seconds: float, held: int, work_us: float) -> list[Row]:
    token = tokens(1)[0]
    with Stack() as stack:
        upstream = stack.upstream(work_us=work_us)
        servers: dict[str, tuple[Server, str, str | None]] = {
            "direct": (upstream, "x", None),
            "nginx": (stack.nginx(upstream), "x", None),
            "bare aiohttp": (stack.bare(upstream), "x", token),
            GATEWAY: (stack.gateway(upstream, env=NO_COLLAPSE), "items", token),
        }
        redis_url = _redis_url()
        if redis_url:
            servers[GATEWAY_REDIS] = (
                stack.gateway(upstream, redis_url=redis_url, env=NO_COLLAPSE), "items", token,
            )  # fmt: skip
        servers[COLLAPSED] = (stack.gateway(upstream), "items", token)
        rows = {name: Row(name) for name in servers}
        for round_number in range(rounds):
            order = list(servers) if round_number % 2 == 0 else list(reversed(servers))
            for name in order:
                server, table, key = servers[name]
                run_wrk(server.url + SMALL.format(table=table), 32, 1, key)  # warm up
                cpu_from = server.cpu_seconds()
                load = run_wrk(server.url + SMALL.format(table=table), 32, seconds, key)
                rows[name].small.append(load)
                rows[name].cpu_us.append((server.cpu_seconds() - cpu_from) / load.requests * 1e6)
                rows[name].large.append(
                    run_wrk(server.url + LARGE.format(table=table), 8, seconds, key)
                )
            print(f"round {round_number + 1}/{rounds} done", file=sys.stderr)
        for name in ("nginx", GATEWAY):
            server, table, _ = servers[name]
            rows[name].fanout = measure(server, upstream, held, table)
        return list(rows.values())


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def render(rows: list[Row], held: int) -> str:
    by_name = {row.name: row for row in rows}
    nginx, gateway = by_name["nginx"], by_name[GATEWAY]
    lines = [
        "shape-gateway rows run with GATEWAY_COLLAPSE=off unless marked collapsed: every request "
        "is the same URL with the same token, which collapsing answers from a lingering exchange",
        f"{'target':<{NAME_WIDTH}}{'catch-up req/s':>16}{'x nginx':>9}{'CPU/req':>9}"
        f"{'snapshot MB/s':>15}{'x nginx':>9}{'RSS/held':>11}{'fan-out p99':>13}",
    ]
    for row in rows:
        fan = row.fanout
        rss = f"{fan.rss_per_held / 1024:.1f} KB" if fan else "-"
        p99 = f"{fan.p99 * 1000:.0f} ms" if fan else "-"
        mb = row.throughput()
        lines.append(f"{row.name:<{NAME_WIDTH}}{row.rate():>16,.0f}"
                     f"{row.rate() / nginx.rate():>9.2f}"
                     f"{row.cpu():>6,.0f} µs{mb:>15,.0f}{mb / nginx.throughput():>9.2f}"
                     f"{rss:>11}{p99:>13}")  # fmt: skip
    small, large = gateway.rate() / nginx.rate(), gateway.throughput() / nginx.throughput()
    lines += [
        "",
        "targets:",
        f"  1-row catch-up, c=32: {small:.3f}x nginx (target 0.30x): {_met(small >= 0.3)}",
        f"  1.3 MB snapshot, c=8: {large:.3f}x nginx (target 0.90x): {_met(large >= 0.9)}",
    ]
    if fan := gateway.fanout:
        lines += [
            f"  RSS per held long-poll: {fan.rss_per_held / 1024:.1f} KB (target 15 KB): "
            f"{_met(fan.rss_per_held <= 15 * 1024)}",
            f"  held at once: {fan.held:,} of {held:,} (target 8,000): {_met(fan.held >= 8000)}; "
            f"answered 200: {fan.answered:,}, otherwise: {fan.others or 'none'}",
            f"  fan-out: p50 {fan.p50 * 1000:.0f} ms, p99 {fan.p99 * 1000:.0f} ms, max "
            f"{fan.max * 1000:.0f} ms after the change (target p99 1 s): {_met(fan.p99 <= 1.0)}",
        ]
    if redis_row := by_name.get(GATEWAY_REDIS):
        ratio = redis_row.rate() / gateway.rate()
        lines.append(f"  with REDIS_URL: {ratio:.3f}x the gateway without (target 0.90x): "
                     f"{_met(ratio >= 0.9)}")  # fmt: skip
    if collapsed := by_name.get(COLLAPSED):
        lines.append(f"  collapsed (GATEWAY_COLLAPSE=on, one URL and token for every request, "
                     f"answers replayed): {collapsed.rate() / nginx.rate():.3f}x nginx, "
                     f"{collapsed.rate() / gateway.rate():.2f}x the gateway with it off; "
                     "not a target")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--held", type=int, default=8000)
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument(
        "--upstream-work-us", type=float, default=40.0,
        help="CPU the upstream spends per shape request (40: docs/performance.md's)",
    )  # fmt: skip
    args = parser.parse_args()
    rows = run(args.rounds, args.seconds, args.held, args.upstream_work_us)
    print(render(rows, args.held))
    if args.json:
        with open(args.json, "w") as out:
            json.dump([asdict(row) for row in rows], out, indent=2)


if __name__ == "__main__":
    main()
