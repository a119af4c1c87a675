"""The gateway against going direct to the upstream, in the same run: throughput, latency, CPU
per request, and the memory of held long-polls.

Run from the repository root: `python -m bench.http [--duration S] [--rounds N]
[--concurrency N] [--held N] [--json PATH]` (1.5 minutes with the defaults). It creates a
schema of two tenants' tasks, starts our fake Electric and `shape-gateway serve` as
subprocesses, and drives them from a load generator in a third process (bench/load.py):

1. catch-up: a non-live request at the shape's head (a small `[up-to-date]` body);
2. initial sync: `offset=-1`, the tenant's whole snapshot;
   both at `--concurrency`, then the catch-up from a single connection ("c=1"): the latency
   the gateway adds when nothing queues;
   each sent direct (the exact upstream query the gateway sent, secret included, as the fake
   recorded it) and through the gateway, in rounds that alternate which goes first, reporting
   the ratios gateway/direct;
3. held long-polls: `--held` live requests through the gateway, held by the upstream; the
   gateway's RSS before and while they are held, then one insert wakes them all.

Everything is torn down at the end, on errors and on Ctrl-C: processes, schema, temp files.
See bench/README.md for how to read the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp

from bench import procfs
from bench.held import hold_long_polls
from bench.load import RateResult, RateSpec, write_spec
from bench.processes import output_of, spawn
from bench.profiled import summarize_profile
from bench.report import DIRECT, GATEWAY, Report, Run, render
from bench.services import (
    LONG_POLL_TIMEOUT,
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
from bench.targets import Target, discover, forget_requests

DEFAULT_DATABASE_URL: Final = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True, slots=True)
class Options:
    duration: float
    rounds: int
    concurrency: int
    single: bool  # also run the catch-up from one connection
    held: int
    held_cycles: int
    rows: int
    max_requests: int
    encoding: str
    database_url: str
    json_path: Path | None
    profile_path: Path | None


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    target: Target
    concurrency: int


def scenarios(targets: list[Target], options: Options) -> list[Scenario]:
    """Each target at --concurrency; the catch-up also from one connection (unless skipped)."""
    chosen = [Scenario(t.scenario, t, options.concurrency) for t in targets]
    if options.single:
        chosen += [Scenario(f"{t.scenario} c=1", t, 1) for t in targets if t.scenario == "catch-up"]
    return chosen


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.http", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run (5)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="runs per scenario and path, alternating (2)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="connections (32)")
    parser.add_argument(
        "--no-single", action="store_true", help="skip the catch-up from one connection"
    )
    parser.add_argument("--held", type=int, default=1000, help="long-polls to hold (1000)")
    parser.add_argument(
        "--held-cycles", type=int, default=1, help="times to hold and release them (1)"
    )
    parser.add_argument("--rows", type=int, default=200, help="rows per tenant (200)")
    parser.add_argument(
        "--max-requests", type=int, default=200_000, help="cap per run, after warm-up (200000)"
    )
    parser.add_argument("--encoding", choices=("gzip", "identity"), default="gzip",
                        help="Accept-Encoding the client sends (gzip, as browsers do)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    parser.add_argument(
        "--profile-gateway",
        type=Path,
        help="run the gateway under cProfile and write its stats here (inflates its CPU)",
    )
    args = parser.parse_args(argv)
    if min(args.duration, args.rounds, args.concurrency, args.rows, args.held_cycles) <= 0:
        parser.error("--duration, --rounds, --concurrency, --rows, --held-cycles must be > 0")
    if args.held < 0:
        parser.error("--held must be 0 (skip) or more")
    return Options(
        duration=args.duration,
        rounds=args.rounds,
        concurrency=args.concurrency,
        single=not args.no_single,
        held=args.held,
        held_cycles=args.held_cycles,
        rows=args.rows,
        max_requests=args.max_requests,
        encoding=args.encoding,
        database_url=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
        json_path=args.json,
        profile_path=args.profile_gateway,
    )


# --- load runs -----------------------------------------------------------------------------


async def measure(
    stack: Stack, options: Options, scenario: Scenario, path: str, number: int
) -> Run:
    target, concurrency = scenario.target, scenario.concurrency
    await forget_requests(stack)
    headers = {"Accept-Encoding": options.encoding}
    if path == GATEWAY:
        headers["Authorization"] = f"Bearer {stack.token()}"
    spec = RateSpec(
        url=target.gateway if path == GATEWAY else target.direct,
        headers=headers,
        concurrency=concurrency,
        duration=options.duration,
        max_requests=options.max_requests,
        warmup_requests=concurrency * 10,
    )
    spec_file = write_spec(
        stack.workdir / f"load-{scenario.name}-{path}-{number}.json".replace(" ", "_"), spec
    )
    pids = {"gateway": stack.gateway.pid, "electric": stack.electric.pid}
    before = procfs.take_cpu_snapshot(pids)
    process = await spawn(
        [sys.executable, "-m", "bench.load", str(spec_file)], None, asyncio.subprocess.PIPE, None
    )
    output = await output_of(process, within=options.duration + 60)
    after = procfs.take_cpu_snapshot(pids)
    result = RateResult.from_json(json.loads(output))
    run = Run(scenario.name, path, number, result, procfs.cpu_between(before, after))
    print(
        f"  {scenario.name:<13}{path:<8}#{number} {result.requests_per_second:6.0f} req/s  "
        f"p50 {result.latency.p50:.2f} ms  p99 {result.latency.p99:.2f} ms  "
        f"errors {result.errors}",
        file=sys.stderr,
        flush=True,
    )
    return run


# --- the run -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(procfs.memory_total_gib(), 1),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "platform": platform.platform(),
    }


def summarize_gateway_log(log: Path) -> dict[str, Any]:
    """Audit lines by status, and any warning or error the gateway logged (evidence of trouble)."""
    audit: Counter[str] = Counter()
    trouble: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            trouble["unparsable line"] += 1
            continue
        if event.get("event") == "shape_request":
            audit[str(event.get("status"))] += 1
        if event.get("level") in ("warning", "error", "critical"):
            trouble[f"{event.get('level')}:{event.get('event')}"] += 1
    return {"audit_lines_by_status": dict(audit), "warnings_and_errors": dict(trouble)}


async def benchmark(options: Options, workdir: Path) -> Report:
    report = Report(
        machine=machine(),
        settings={
            "duration": options.duration,
            "rounds": options.rounds,
            "concurrency": options.concurrency,
            "held": options.held,
            "held_cycles": options.held_cycles,
            "single_connection_catch_up": options.single,
            "rows_per_tenant": options.rows,
            "encoding": options.encoding,
            "long_poll_timeout": LONG_POLL_TIMEOUT,
            "profiled": options.profile_path is not None,
        },
    )
    jwt_secret, electric_secret = secrets.token_urlsafe(48), secrets.token_hex(16)
    with created_schema(options.database_url, options.rows) as schema:
        rules = workdir / "rules.yaml"
        rules.write_text(rules_yaml(schema.name))
        async with contextlib.AsyncExitStack() as exits:
            electric = await exits.enter_async_context(
                running(
                    "fake Electric",
                    electric_argv(options.database_url, electric_secret, LONG_POLL_TIMEOUT),
                    os.environ,
                    workdir / "electric.log",
                    electric_url,
                )
            )
            gateway = await exits.enter_async_context(
                running(
                    "gateway",
                    gateway_argv(rules, electric.url, options.profile_path),
                    gateway_env(jwt_secret, electric_secret),
                    workdir / "gateway.log",
                    gateway_url,
                )
            )
            rss_start = procfs.rss_kib(gateway.pid)
            session = await exits.enter_async_context(aiohttp.ClientSession())
            stack = Stack(schema, electric, gateway, session, workdir, jwt_secret, options.rows)
            print(f"gateway {gateway.url} -> fake Electric {electric.url}; logs in {workdir}",
                  file=sys.stderr)  # fmt: skip
            targets = await discover(stack)
            report.checks["same_body_direct_and_gateway"] = {
                t.scenario: t.same_body for t in targets
            }
            for scenario in scenarios(targets, options):
                for number in range(1, options.rounds + 1):
                    order = (DIRECT, GATEWAY) if number % 2 else (GATEWAY, DIRECT)
                    for path in order:
                        report.runs.append(await measure(stack, options, scenario, path, number))
            for cycle in range(1, options.held_cycles + 1 if options.held else 1):
                print(f"  holding {options.held} long-polls (cycle {cycle})", file=sys.stderr)
                report.holds.append(
                    await hold_long_polls(stack, options.held, options.encoding, cycle, rss_start)
                )
        report.checks.update(summarize_gateway_log(workdir / "gateway.log"))
    if options.profile_path is not None:
        audited = sum(report.checks["audit_lines_by_status"].values())
        report.profile = summarize_profile(options.profile_path, audited)
    return report


async def main_async(options: Options, workdir: Path) -> Report:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await benchmark(options, workdir)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-http-"))
    try:
        report = asyncio.run(main_async(options, workdir))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(f"interrupted: servers stopped, schema dropped; logs kept in {workdir}",
              file=sys.stderr)  # fmt: skip
        return 130
    except Exception:
        print(f"the benchmark failed; servers stopped, schema dropped; logs kept in {workdir}",
              file=sys.stderr)  # fmt: skip
        raise
    shutil.rmtree(workdir, ignore_errors=True)
    print(render(report))
    if options.json_path is not None:
        options.json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
