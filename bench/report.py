"""The benchmark's results as values, a compact table for people, and JSON for machines.

Each scenario is run in rounds that alternate which path goes first (direct, gateway; then
gateway, direct), so a slow drift of the machine weighs on both paths alike; the table shows
medians over rounds, and the ratios are the medians of each round's ratio.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from bench.load import HoldResult, RateResult
from bench.procfs import CpuUse

DIRECT: Final = "direct"
GATEWAY: Final = "gateway"
CPU_COLUMNS: Final = ("gateway", "electric", "postgres", "load")
BUSY_ELSEWHERE: Final = 0.10  # warn when other processes used more of the machine than this


@dataclass(frozen=True, slots=True)
class Run:
    """One load run: a scenario, sent direct to the fake Electric or through the gateway."""

    scenario: str
    path: str
    round: int
    result: RateResult
    cpu: CpuUse

    def cpu_us_per_request(self, process: str) -> float:
        """Microseconds of `process` CPU per request (servers: per request sent, warm-up
        included, since their CPU was read around the whole run)."""
        if process == "load":
            sent = self.result.ok + self.result.errors
            return self.result.cpu_seconds / sent * 1e6 if sent else 0.0
        sent = self.result.sent
        return self.cpu.seconds.get(process, 0.0) / sent * 1e6 if sent else 0.0

    @property
    def other_share(self) -> float:
        """How much of the machine processes other than ours used during the run."""
        ours = sum(self.cpu.seconds.values()) + self.result.process_cpu_seconds
        return self.cpu.other_share(ours)

    def to_json(self) -> dict[str, Any]:
        latency = dataclasses.asdict(self.result.latency)
        return {
            "scenario": self.scenario,
            "path": self.path,
            "round": self.round,
            "requests_per_second": round(self.result.requests_per_second, 1),
            "latency_ms": {name: round(value, 3) for name, value in latency.items()},
            "ok": self.result.ok,
            "errors": self.result.errors,
            "statuses": self.result.statuses,
            "first_error": self.result.first_error,
            "seconds": round(self.result.seconds, 3),
            "bytes_per_response": round(self.result.body_bytes / max(self.result.ok, 1)),
            "cpu_us_per_request": {
                name: round(self.cpu_us_per_request(name), 1) for name in CPU_COLUMNS
            },
            "machine_busy": round(self.cpu.machine_busy, 3),
            "machine_used_by_others": round(self.other_share, 3),
        }


@dataclass(frozen=True, slots=True)
class Summary:
    """Medians over the rounds of one scenario and path."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us_per_request: dict[str, float]
    machine_busy: float
    other_share: float

    @classmethod
    def of(cls, runs: list[Run]) -> Summary:
        def median(value: Callable[[Run], float]) -> float:
            return statistics.median(value(run) for run in runs)

        return cls(
            requests_per_second=median(lambda r: r.result.requests_per_second),
            p50_ms=median(lambda r: r.result.latency.p50),
            p99_ms=median(lambda r: r.result.latency.p99),
            errors=sum(run.result.errors for run in runs),
            cpu_us_per_request={
                name: statistics.median(run.cpu_us_per_request(name) for run in runs)
                for name in CPU_COLUMNS
            },
            machine_busy=median(lambda r: r.cpu.machine_busy),
            other_share=max(run.other_share for run in runs),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "requests_per_second": round(self.requests_per_second, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "errors": self.errors,
            "cpu_us_per_request": {k: round(v, 1) for k, v in self.cpu_us_per_request.items()},
            "machine_busy": round(self.machine_busy, 3),
            "machine_used_by_others_max": round(self.other_share, 3),
        }


@dataclass(frozen=True, slots=True)
class Hold:
    """`--held` live long-polls held through the gateway, and what they cost it."""

    cycle: int
    requested: int
    held: int  # held_requests at the fake while we measured
    seconds_to_hold: float
    rss_start_kib: int  # right after the gateway started
    rss_before_kib: int  # just before the polls were opened
    rss_held_kib: int  # the largest of several samples while they were held
    rss_after_kib: int  # after they were answered
    fds_before: int
    fds_held: int
    listen_overflows: int  # machine-wide, while the polls were being opened
    wake_seconds: float  # from the waking insert to the last answer
    result: HoldResult
    healthy: bool
    health: str

    @property
    def kib_per_poll(self) -> float:
        return (self.rss_held_kib - self.rss_before_kib) / self.requested

    def to_json(self) -> dict[str, Any]:
        return {
            "cycle": self.cycle,
            "requested": self.requested,
            "held": self.held,
            "seconds_to_hold": round(self.seconds_to_hold, 2),
            "rss_mib": {
                "start": round(self.rss_start_kib / 1024, 1),
                "before": round(self.rss_before_kib / 1024, 1),
                "held": round(self.rss_held_kib / 1024, 1),
                "after": round(self.rss_after_kib / 1024, 1),
            },
            "rss_added_mib": round((self.rss_held_kib - self.rss_before_kib) / 1024, 1),
            "kib_per_held_poll": round(self.kib_per_poll, 1),
            "fds": {"before": self.fds_before, "held": self.fds_held},
            "listen_overflows_while_opening": self.listen_overflows,
            "answered": self.result.statuses,
            "woken_by_change": self.result.woken,
            "wake_seconds": round(self.wake_seconds, 3),
            "held_ms": dataclasses.asdict(self.result.latency),
            "first_error": self.result.first_error,
            "healthy_after": self.healthy,
            "health": self.health,
        }


@dataclass(slots=True)
class Report:
    machine: dict[str, Any]
    settings: dict[str, Any]
    runs: list[Run] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    profile: str | None = None

    @property
    def scenarios(self) -> list[str]:
        return list(dict.fromkeys(r.scenario for r in self.runs))

    def summary(self, scenario: str, path: str) -> Summary | None:
        runs = [r for r in self.runs if (r.scenario, r.path) == (scenario, path)]
        return Summary.of(runs) if runs else None

    def ratios(self, scenario: str) -> dict[str, float] | None:
        """gateway / direct, the median over rounds: throughput (below 1 is slower) and
        latency (above 1 is slower)."""
        pairs = []
        for number in sorted({r.round for r in self.runs}):
            paths = {
                r.path: r.result for r in self.runs if (r.scenario, r.round) == (scenario, number)
            }
            if DIRECT in paths and GATEWAY in paths:
                pairs.append((paths[DIRECT], paths[GATEWAY]))
        if not pairs:
            return None

        def median(value: Callable[[RateResult, RateResult], float]) -> float:
            return round(statistics.median(value(d, g) for d, g in pairs), 3)

        return {
            "throughput": median(lambda d, g: _ratio(g.requests_per_second, d.requests_per_second)),
            "p50": median(lambda d, g: _ratio(g.latency.p50, d.latency.p50)),
            "p99": median(lambda d, g: _ratio(g.latency.p99, d.latency.p99)),
            "added_p50_ms": median(lambda d, g: g.latency.p50 - d.latency.p50),
        }

    def to_json(self) -> dict[str, Any]:
        summaries = {
            scenario: {
                path: summary.to_json()
                for path in (DIRECT, GATEWAY)
                if (summary := self.summary(scenario, path)) is not None
            }
            for scenario in self.scenarios
        }
        return {
            "machine": self.machine,
            "settings": self.settings,
            "summary": summaries,
            "ratios_gateway_over_direct": {s: self.ratios(s) for s in self.scenarios},
            "runs": [run.to_json() for run in self.runs],
            "held_long_polls": [hold.to_json() for hold in self.holds],
            "checks": self.checks,
        }


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def render(report: Report) -> str:
    m, s = report.machine, report.settings
    lines = [
        "shape-gateway HTTP benchmark: gateway vs direct to the upstream, same run, loopback",
        f"machine: {m['cores']} cores, {m['memory_gib']:.0f} GiB. The load generator, gateway, "
        "fake Electric and PostgreSQL share these cores, so req/s is bounded by the machine; "
        "CPU per request is the steadier figure.",
        f"upstream: our fake Electric (tests/electric: Python, a catalog query per request); "
        f"{s['rows_per_tenant']} rows per tenant; concurrency {s['concurrency']}; "
        f"{s['rounds']} x {s['duration']:g} s per path; Accept-Encoding: {s['encoding']}; "
        "medians over rounds",
        "",
    ]
    header = (
        f"{'scenario':<13}{'path':<9}{'req/s':>7}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7} "
        f"| CPU µs/req: {'gateway':>7}{'fake':>6}{'pg':>5}{'load':>6} | {'busy':>5}{'other':>6}"
    )
    lines += [header, "-" * len(header)]
    for scenario in report.scenarios:
        for path in (DIRECT, GATEWAY):
            summary = report.summary(scenario, path)
            if summary is not None:
                lines.append(_row(scenario, path, summary))
        ratios, gateway = report.ratios(scenario), report.summary(scenario, GATEWAY)
        if ratios is not None and gateway is not None:
            cpu = gateway.cpu_us_per_request["gateway"]
            lines.append(
                f"{'':<13}gateway/direct: throughput {ratios['throughput']:.2f}x, "
                f"p50 {ratios['p50']:.2f}x ({ratios['added_p50_ms']:+.2f} ms), "
                f"p99 {ratios['p99']:.2f}x; gateway CPU {cpu:.0f} µs/req "
                f"(~{1e6 / cpu if cpu else 0:.0f} req/s on a core of its own)"
            )
    lines += _warnings(report)
    for hold in report.holds:
        lines += ["", *_render_hold(hold)]
    if report.checks:
        lines += ["", "checks: " + "; ".join(f"{k}: {v}" for k, v in report.checks.items())]
    if report.profile:
        lines += ["", report.profile]
    return "\n".join(lines)


def _row(scenario: str, path: str, s: Summary) -> str:
    cpu = s.cpu_us_per_request
    gateway = f"{cpu['gateway']:7.0f}" if path == GATEWAY else f"{'-':>7}"
    return (
        f"{scenario:<13}{path:<9}{s.requests_per_second:7.0f}{s.p50_ms:8.2f}{s.p99_ms:8.2f}"
        f"{s.errors:7d} | {'':12}{gateway}{cpu['electric']:6.0f}{cpu['postgres']:5.0f}"
        f"{cpu['load']:6.0f} | {s.machine_busy:5.0%}{s.other_share:6.0%}"
    )


def _warnings(report: Report) -> list[str]:
    lines = [
        f"WARNING: {run.scenario} {run.path} round {run.round}: {run.result.errors} requests "
        f"not answered 200 ({run.result.statuses}; {run.result.first_error}); its numbers are "
        "not comparable"
        for run in report.runs
        if run.result.errors
    ]
    busiest = max(report.runs, key=lambda r: r.other_share, default=None)
    if busiest is not None and busiest.other_share > BUSY_ELSEWHERE:
        lines.append(
            f"WARNING: processes other than the benchmark's used up to "
            f"{busiest.other_share:.0%} of the machine during a run (column `other`): "
            "numbers are disturbed; rerun on a quiet machine"
        )
    return lines


def _render_hold(hold: Hold) -> list[str]:
    mib = 1024
    added = hold.rss_held_kib - hold.rss_before_kib
    answered = ", ".join(f"{k}: {v}" for k, v in sorted(hold.result.statuses.items()))
    return [
        f"held long-polls through the gateway{f' (cycle {hold.cycle})' if hold.cycle > 1 else ''}: "
        f"{hold.requested} opened, {hold.held} held by the upstream (its held_requests) "
        f"{hold.seconds_to_hold:.1f} s later",
        f"  gateway RSS: {hold.rss_before_kib / mib:.1f} MiB before -> "
        f"{hold.rss_held_kib / mib:.1f} MiB held = +{added / mib:.1f} MiB, "
        f"{hold.kib_per_poll:.1f} KiB per held long-poll ({hold.rss_start_kib / mib:.1f} MiB "
        f"at start, {hold.rss_after_kib / mib:.1f} MiB after release)",
        f"  gateway open fds: {hold.fds_before} before, {hold.fds_held} held; "
        f"{hold.listen_overflows} connects dropped by full listen queues while opening them "
        "(machine-wide TcpExtListenOverflows; each costs its client a SYN retry of 1 s or more)",
        f"  released by one insert: {hold.result.woken} woke with the change, all answered "
        f"({answered}) {hold.wake_seconds:.2f} s after it",
        f"  gateway after: {'healthy' if hold.healthy else 'NOT HEALTHY'} ({hold.health})",
    ]
