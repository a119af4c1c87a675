"""bench.revocation's results as values: each revocation's cut, what the replicas' `/metrics` and
logs say, a compact text report and JSON.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from prometheus_client.parser import text_string_to_metric_families

from bench.load import Latencies
from bench.procfs import CpuUse
from bench.report import BUSY_ELSEWHERE
from gateway.redis_keys import revocation_stream

REVOKED: Final = "401 session_revoked"  # how a revoked user's requests must be answered


@dataclass(frozen=True, slots=True)
class Cut:
    """One revocation: posted to one replica, cutting a poll held on (maybe) another."""

    user: str
    posted_to: int
    held_on: int
    started_at: float  # time.time() just before the POST (for the breakdown, on Redis's clock)
    post_status: int
    event_id: str | None  # the Redis stream id `<ms>-<seq>`
    post_seconds: float  # POST sent -> its 202 read
    seconds: float | None  # POST sent -> the held poll answered; None: not within the timeout
    answer: str  # the held poll's: "401 session_revoked", or what came instead
    next_answers: tuple[str, ...]  # the user's next request on each replica, right after
    refused_everywhere_after: float | None  # seconds after the cut; 0: at once; None: not in 1 s

    @property
    def before_202(self) -> bool:
        return self.seconds is not None and self.seconds < self.post_seconds

    @property
    def xadd_seconds(self) -> float | None:
        """POST sent -> appended to the stream (the id's milliseconds: Redis's clock, this
        machine's; truncated, so up to 1 ms low)."""
        if self.event_id is None:
            return None
        return int(self.event_id.split("-", 1)[0]) / 1e3 - self.started_at

    def to_json(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "posted_to": self.posted_to,
            "held_on": self.held_on,
            "post_status": self.post_status,
            "event_id": self.event_id,
            "post_ms": _round_ms(self.post_seconds),
            "cut_ms": _round_ms(self.seconds),
            "xadd_ms": _round_ms(self.xadd_seconds),
            "answer": self.answer,
            "next_answers": list(self.next_answers),
            "refused_everywhere_after_ms": _round_ms(self.refused_everywhere_after),
        }


def _round_ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e3, 3)


# --- /metrics ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplicaMetrics:
    lag_count: float
    lag_sum: float
    lag_buckets: dict[str, float]  # cumulative counts by `le`
    streams_cut: float
    revocations_applied: float
    live_connections: float

    @property
    def lag_mean(self) -> float:
        return self.lag_sum / self.lag_count if self.lag_count else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "revocation_lag_seconds": {
                "count": self.lag_count,
                "sum": round(self.lag_sum, 6),
                "mean_ms": round(self.lag_mean * 1e3, 3),
                "cumulative_buckets": self.lag_buckets,
            },
            "streams_cut_total": self.streams_cut,
            "revocations_applied_total": self.revocations_applied,
            "live_connections": self.live_connections,
        }


def parse_metrics(text: str) -> ReplicaMetrics:
    values: defaultdict[str, float] = defaultdict(float)
    buckets: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "shape_gateway_revocation_lag_seconds_bucket":
                buckets[sample.labels["le"]] = sample.value
            else:
                values[sample.name] += sample.value  # summed over labels (applied, by type)
    return ReplicaMetrics(
        lag_count=values["shape_gateway_revocation_lag_seconds_count"],
        lag_sum=values["shape_gateway_revocation_lag_seconds_sum"],
        lag_buckets=buckets,
        streams_cut=values["shape_gateway_streams_cut_total"],
        revocations_applied=values["shape_gateway_revocations_applied_total"],
        live_connections=values["shape_gateway_live_connections"],
    )


# --- the replica's JSON log ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplicaLog:
    """What one replica logged: each event applied, how it answered the revoked users' next
    requests, and its warnings (while serving, and while stopping)."""

    applied: dict[str, tuple[float, int]]  # event id -> (lag_ms it logged, streams it cut)
    next_requests: dict[str, int]  # how the revoked users' non-live requests went
    audit: dict[str, int]  # audit lines by status
    warnings: dict[str, int]  # "level event: reason" -> count
    warnings_stopping: dict[str, int]  # ... once it logged gateway_stopping
    gc_pauses: list[tuple[float, float]]  # (time.time() at its end, ms): with --gc-probe only

    def to_json(self) -> dict[str, Any]:
        return {
            "revocation_applied_lines": len(self.applied),
            "streams_cut_in_log": sum(cut for _, cut in self.applied.values()),
            "revoked_users_next_requests": self.next_requests,
            "audit_lines_by_status": self.audit,
            "warnings_and_errors": self.warnings,
            "warnings_and_errors_while_stopping": self.warnings_stopping,
            "gc_pauses": [{"at": at, "ms": ms} for at, ms in self.gc_pauses],
        }


def parse_replica_log(log: Path, revoked: set[str]) -> ReplicaLog:
    applied: dict[str, tuple[float, int]] = {}
    next_requests: Counter[str] = Counter()
    audit: Counter[str] = Counter()
    warnings: Counter[str] = Counter()
    stopping: Counter[str] = Counter()
    trouble = warnings
    pauses: list[tuple[float, float]] = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            trouble["unparsable line"] += 1
            continue
        name = event.get("event")
        if name == "gateway_stopping":
            trouble = stopping
        elif name == "gc_pause":
            pauses.append((float(event["at"]), float(event["ms"])))
        elif name == "revocation_applied":
            applied[str(event["id"])] = (float(event["lag_ms"]), int(event["streams_cut"]))
        elif name == "shape_request":
            audit[str(event.get("status"))] += 1
            if event.get("user") in revoked and not event.get("live"):
                next_requests[_next_request_kind(event)] += 1
        if event.get("level") in ("warning", "error", "critical"):
            trouble[f"{event['level']} {name}: {event.get('reason') or event.get('error')}"] += 1
    return ReplicaLog(
        applied, dict(next_requests), dict(audit), dict(warnings), dict(stopping), pauses
    )


def _next_request_kind(audit: dict[str, Any]) -> str:
    """A refusal at the check never reaches the planner (no upstream); a 401 with an upstream
    passed the check before this replica applied the event, and was cut in flight."""
    if audit.get("status") != 401 or audit.get("reason") != "session_revoked":
        return f"answered {audit.get('status')} {audit.get('reason')}"
    return "cut in flight" if audit.get("upstream") else "refused at the check"


# --- the result ----------------------------------------------------------------------------


@dataclass(slots=True)
class Result:
    machine: dict[str, Any]
    settings: dict[str, Any]
    held_per_replica: list[int] = field(default_factory=list)
    held_by_fake: int = 0
    seconds_to_hold: float = 0.0
    cuts: list[Cut] = field(default_factory=list)
    phase_seconds: float = 0.0
    phase_from: float = 0.0  # time.time() when the revocations began
    renewals: int = 0  # polls answered at the upstream's timeout and sent again
    collateral: dict[str, int] = field(default_factory=dict)  # other polls that ended, by answer
    held_after: int = 0  # the fake's held requests after the revocations
    expected_after: int = 0
    released: dict[str, int] = field(default_factory=dict)  # the rest, after one insert
    release_seconds: float = 0.0
    metrics: list[ReplicaMetrics] = field(default_factory=list)
    logs: list[ReplicaLog] = field(default_factory=list)
    cpu: CpuUse | None = None  # while revoking
    cpu_holding: CpuUse | None = None  # just before, while merely holding the polls ...
    holding_seconds: float = 0.0  # ... for this long

    @property
    def measured(self) -> list[Cut]:
        return [c for c in self.cuts if c.seconds is not None]

    def latencies(self, cuts: Iterable[Cut]) -> Latencies:
        return Latencies.of([c.seconds for c in cuts if c.seconds is not None])

    @property
    def other_replica(self) -> list[Cut]:
        return [c for c in self.measured if c.held_on != c.posted_to]

    @property
    def same_replica(self) -> list[Cut]:
        return [c for c in self.measured if c.held_on == c.posted_to]

    def breakdown(self) -> dict[str, list[float]]:
        """Each cut in three legs (seconds): POST sent -> XADD (the id's time); XADD -> applied
        on the replica holding the poll (the lag it logged); applied -> the client has the 401."""
        legs: dict[str, list[float]] = {"post_to_xadd": [], "xadd_to_applied": [], "to_client": []}
        for cut in self.measured:
            xadd = cut.xadd_seconds
            applied = self.logs[cut.held_on].applied.get(cut.event_id or "")
            if xadd is None or applied is None or cut.seconds is None:
                continue
            legs["post_to_xadd"].append(xadd)
            legs["xadd_to_applied"].append(applied[0] / 1e3)
            legs["to_client"].append(cut.seconds - xadd - applied[0] / 1e3)
        return legs

    @property
    def apply_lags(self) -> list[float]:
        """Seconds from each event's Redis id to its application, on every replica."""
        ids = {c.event_id for c in self.cuts}
        return [lag / 1e3 for log in self.logs for i, (lag, _) in log.applied.items() if i in ids]

    @property
    def apply_spreads(self) -> list[float]:
        """Per event, seconds between the first and the last replica applying it."""
        spreads = []
        for cut in self.cuts:
            lags = [
                log.applied[cut.event_id][0] for log in self.logs if cut.event_id in log.applied
            ]
            if len(lags) == len(self.logs) > 1:
                spreads.append((max(lags) - min(lags)) / 1e3)
        return spreads

    @property
    def next_requests(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for log in self.logs:
            total.update(log.next_requests)
        return dict(total)

    def gateway_cpu_per_revocation(self) -> float | None:
        """CPU seconds one replica spent per revocation, on average, beyond what merely holding
        the polls costs it (its answers to the POSTs, the cuts and the next requests included)."""
        if self.cpu is None or self.cpu_holding is None or not self.cuts or not self.logs:
            return None
        if not self.holding_seconds:
            return None

        def gateways(use: CpuUse) -> float:
            return sum(v for k, v in use.seconds.items() if k.startswith("gateway"))

        holding = gateways(self.cpu_holding) * self.phase_seconds / self.holding_seconds
        return (gateways(self.cpu) - holding) / len(self.logs) / len(self.cuts)

    def pauses_while_revoking(self, log: ReplicaLog) -> list[float]:
        """Milliseconds of the replica's GC pauses that ended while revoking (--gc-probe)."""
        until = self.phase_from + self.phase_seconds
        return [ms for at, ms in log.gc_pauses if self.phase_from <= at <= until]

    @property
    def other_share(self) -> float:
        return 0.0 if self.cpu is None else self.cpu.other_share(sum(self.cpu.seconds.values()))

    def to_json(self) -> dict[str, Any]:
        cuts = self.cuts
        return {
            "machine": self.machine,
            "settings": self.settings,
            "held": {
                "per_replica": self.held_per_replica,
                "held_by_fake": self.held_by_fake,
                "seconds_to_hold": round(self.seconds_to_hold, 2),
            },
            "revocations": {
                "done": len(cuts),
                "seconds": round(self.phase_seconds, 2),
                "cut_ms": _percentiles(self.latencies(self.measured)),
                "cut_ms_other_replica": _percentiles(self.latencies(self.other_replica)),
                "cut_ms_same_replica": _percentiles(self.latencies(self.same_replica)),
                "cut_on_other_replica": len(self.other_replica),
                "not_cut_in_time": len(cuts) - len(self.measured),
                "answers": dict(Counter(c.answer for c in cuts)),
                "answered_before_the_202": sum(c.before_202 for c in cuts),
                "post_ms": _percentiles(Latencies.of([c.post_seconds for c in cuts])),
                "post_statuses": dict(Counter(str(c.post_status) for c in cuts)),
                "breakdown_ms": {
                    leg: _percentiles(Latencies.of(values))
                    for leg, values in self.breakdown().items()
                },
                "next_request_refused_on_every_replica_at_once": sum(
                    c.refused_everywhere_after == 0.0 for c in cuts
                ),
                "next_request_refused_on_every_replica_within_1s": sum(
                    c.refused_everywhere_after is not None for c in cuts
                ),
                "next_requests_as_logged": self.next_requests,
                "each": [c.to_json() for c in cuts],
            },
            "control": {
                "renewed_at_upstream_timeout": self.renewals,
                "other_polls_ended_during_revocations": self.collateral,
                "held_by_fake_after": self.held_after,
                "expected_held_after": self.expected_after,
                "released_by_one_insert": self.released,
                "release_seconds": round(self.release_seconds, 3),
            },
            "replicas": [
                {**metrics.to_json(), **log.to_json()}
                for metrics, log in zip(self.metrics, self.logs, strict=True)
            ],
            "apply_lag_ms_from_logs": _percentiles(Latencies.of(self.apply_lags)),
            "apply_spread_across_replicas_ms": _percentiles(Latencies.of(self.apply_spreads)),
            "cpu_seconds_during_revocations": _cpu_json(self.cpu, self.other_share),
            "cpu_seconds_while_holding_before": _cpu_json(self.cpu_holding, None),
            "gateway_cpu_ms_per_revocation_per_replica": None
            if (per := self.gateway_cpu_per_revocation()) is None
            else round(per * 1e3, 3),
        }


def _cpu_json(use: CpuUse | None, other_share: float | None) -> dict[str, float] | None:
    if use is None:
        return None
    document = {k: round(v, 3) for k, v in use.seconds.items()}
    document["machine_busy"] = round(use.machine_busy, 3)
    if other_share is not None:
        document["machine_used_by_others"] = round(other_share, 3)
    return document


def _percentiles(latency: Latencies) -> dict[str, float]:
    return {name: round(getattr(latency, name), 3) for name in ("p50", "p90", "p99", "max")}


def _brief(latency: Latencies) -> str:
    p50, p90, p99, top = latency.p50, latency.p90, latency.p99, latency.max
    return f"p50 {p50:.1f}  p90 {p90:.1f}  p99 {p99:.1f}  max {top:.1f}"


def render(result: Result) -> str:
    m, s, cuts = result.machine, result.settings, result.cuts
    at_once = sum(c.refused_everywhere_after == 0.0 for c in cuts)
    within = sum(c.refused_everywhere_after is not None for c in cuts)
    legs = {leg: Latencies.of(values) for leg, values in result.breakdown().items()}
    lines = [
        f"shape-gateway revocation cut-off: {s['replicas']} replicas on one Redis "
        f"({s['redis']}), {s['held']} held long-polls, session.revoked one user at a time",
        f"machine: {m['cores']} cores, shared by this process (the clients, the timing), the "
        f"{s['replicas']} gateways, the fake Electric (Python: checks each held poll every "
        "100 ms), PostgreSQL and Redis; latencies include waiting for a core",
        f"publish: POST /admin/revocations to a random replica, which XADDs to "
        f"{revocation_stream(s['redis_prefix'])}; every replica follows it with XREAD BLOCK",
        "",
        f"held: {sum(result.held_per_replica)} opened "
        f"({'/'.join(map(str, result.held_per_replica))} per replica); the fake held "
        f"{result.held_by_fake} after {result.seconds_to_hold:.1f} s",
        f"revoked: {len(cuts)} users in {result.phase_seconds:.1f} s. Cut-off = POST sent -> "
        "that user's held long-poll answered:",
        f"  cut-off ms      {_brief(result.latencies(result.measured))}",
        f"  held elsewhere  {_brief(result.latencies(result.other_replica))}"
        f"  ({len(result.other_replica)}/{len(result.measured)} were held on another replica "
        "than the one posted to)",
        f"  same replica    {_brief(result.latencies(result.same_replica))}",
        f"  in legs (ms): POST -> XADD p50 {legs['post_to_xadd'].p50:.1f}; XADD -> applied on "
        f"the holding replica p50 {legs['xadd_to_applied'].p50:.1f} p99 "
        f"{legs['xadd_to_applied'].p99:.1f}; applied -> 401 at the client p50 "
        f"{legs['to_client'].p50:.1f} p99 {legs['to_client'].p99:.1f}",
        f"  answers: {dict(Counter(c.answer for c in cuts))}; none within the timeout: "
        f"{len(cuts) - len(result.measured)}; the 401 came before the POST's own 202: "
        f"{sum(c.before_202 for c in cuts)}; POST p50 "
        f"{Latencies.of([c.post_seconds for c in cuts]).p50:.1f} ms, "
        f"{dict(Counter(str(c.post_status) for c in cuts))}",
        f"  each revoked user's next request, sent to every replica right after the cut: "
        f"{REVOKED} from all at once {at_once}/{len(cuts)}, within 1 s {within}/{len(cuts)}; "
        f"as the replicas logged them: {result.next_requests}",
        f"control: other polls ended meanwhile: {result.collateral or 'none'}; the fake then "
        f"held {result.held_after} (expected {result.expected_after}); one insert released "
        f"them: {result.released} in {result.release_seconds:.2f} s; "
        f"{result.renewals} polls renewed at the upstream's 20 s timeout",
        "replicas (/metrics, and their logs):",
    ]
    for number, (metrics, log) in enumerate(zip(result.metrics, result.logs, strict=True)):
        lines.append(
            f"  #{number}: revocation_lag_seconds count {metrics.lag_count:.0f} sum "
            f"{metrics.lag_sum:.3f} (mean {metrics.lag_mean * 1e3:.1f} ms, "
            f"{metrics.lag_buckets.get('0.01', 0.0):.0f} <= 10 ms); streams_cut_total "
            f"{metrics.streams_cut:.0f}; revocation_applied lines {len(log.applied)}"
        )
    lag, spread = Latencies.of(result.apply_lags), Latencies.of(result.apply_spreads)
    lines.append(
        f"  applied (Redis id -> applied, every replica) ms: {_brief(lag)}; first to last "
        f"replica per event: p50 {spread.p50:.1f} max {spread.max:.1f}"
    )
    lines += _trouble(result)
    return "\n".join(lines)


def _trouble(result: Result) -> list[str]:
    lines = []
    if result.cpu is not None and result.cpu_holding is not None:
        for what, use, seconds in (
            ("holding", result.cpu_holding, result.holding_seconds),
            ("revoking", result.cpu, result.phase_seconds),
        ):
            used = ", ".join(f"{k} {v / seconds:.0%}" for k, v in use.seconds.items())
            lines.append(
                f"CPU (share of one core) while {what} for {seconds:.1f} s: {used}; machine busy "
                f"{use.machine_busy:.0%}"
            )
        per = result.gateway_cpu_per_revocation()
        lines.append(
            f"  each revocation cost each replica ~{(per or 0.0) * 1e3:.2f} ms of CPU beyond "
            f"holding (its share of the POSTs, cuts and next requests included); other "
            f"processes used {result.other_share:.0%} of the machine while revoking"
        )
        if result.other_share > BUSY_ELSEWHERE:
            lines.append("WARNING: other processes used the machine meanwhile; rerun when quiet")
    if result.settings.get("gc_probe"):
        pauses = [result.pauses_while_revoking(log) for log in result.logs]
        every = [ms for log in result.logs for _, ms in log.gc_pauses]
        lines.append(
            "GC pauses >= 5 ms while revoking, per replica: "
            + ", ".join(
                f"#{n}: {len(p)} (max {max(p, default=0):.0f} ms)" for n, p in enumerate(pauses)
            )
            + f"; over the whole run: {len(every)}, max {max(every, default=0):.0f} ms"
        )
    for when, pick in (("serving", "warnings"), ("stopping", "warnings_stopping")):
        counts: Counter[str] = Counter()
        for log in result.logs:
            counts.update(getattr(log, pick))
        lines.append(f"gateway warnings while {when} (all replicas): {dict(counts) or 'none'}")
    return lines
