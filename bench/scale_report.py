"""What bench.scale measures besides the cut-off, and its report: the result as a value,
Redis connections by job and memory per event, the cost of applying one event in process,
the replicas' garbage-collection pauses, percentiles and the text report."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import redis.asyncio as aioredis
import structlog

from gateway.auth.identity import Identity
from gateway.logs import configure_logging
from gateway.metrics import Metrics
from gateway.revocation.enforcer import Revocations
from gateway.revocation.events import EventType, RevocationEvent
from gateway.revocation.store import MemoryStore
from gateway.streams import OpenStreams

LONG_POLL: Final = 20.0  # seconds the upstream holds a long-poll, as Electric does


@dataclass
class Result:
    settings: dict[str, Any]
    held: int = 0
    seconds_to_hold: float = 0.0
    renewals: int = 0  # long-polls answered at the upstream's timeout and sent again
    cutoff_ms: list[float] = field(default_factory=list)  # per user: until all its streams ended
    stream_ms: dict[str, list[float]] = field(default_factory=dict)  # per kind, per stream
    outcomes: dict[str, int] = field(default_factory=dict)
    collateral: int = 0
    rss_kib_per_stream: list[float] = field(default_factory=list)
    redis_connections: list[dict[str, int]] = field(default_factory=list)  # most at once
    holding_cpu_share: list[float] = field(default_factory=list)  # of a core, merely holding
    apply_us: dict[int, float] = field(default_factory=dict)  # open streams -> µs per event
    machine_busy: float = 0.0  # while revoking: share of all cores in use
    others_share: float = 0.0  # ... used by processes not of this benchmark
    gc_pauses_ms: list[list[float]] = field(default_factory=list)  # while revoking, >= 5 ms
    redis_bytes_per_event: dict[str, float] = field(default_factory=dict)


async def redis_bytes_per_event(redis: aioredis.Redis, prefix: str) -> dict[str, float]:
    """MEMORY USAGE of a stream of 10,000 events like real ones, per event, by type."""
    sizes = {}
    for kind, fields in {
        "session.revoked": {"type": "session.revoked", "user": "user-0000012345"},
        "membership.revoked": {"type": "membership.revoked", "user": "user-0000012345",
                               "tenant": "tenant-0042"},
    }.items():  # fmt: skip
        key = f"{prefix}:{{sizing}}"
        async with redis.pipeline(transaction=False) as pipe:
            for n in range(10_000):
                entry: dict[Any, Any] = {**fields, "user": f"user-{n:010d}"}
                pipe.xadd(key, entry)
            await pipe.execute()
        sizes[kind] = round(int(await redis.memory_usage(key, samples=0) or 0) / 10_000, 1)
        await redis.delete(key)
    return sizes


class ConnectionSampler:
    """The most Redis connections each replica held at once, by job (CLIENT LIST, 4 a second)."""

    def __init__(self, redis: aioredis.Redis, pids: list[int]) -> None:
        self.redis, self.pids = redis, pids
        self.most: list[dict[str, int]] = [{} for _ in pids]

    async def run(self) -> None:
        while True:
            clients = await self.redis.client_list()
            for most, pid in zip(self.most, self.pids, strict=True):
                for job, count in connections_by_job(clients, pid).items():
                    most[job] = max(most.get(job, 0), count)
            await asyncio.sleep(0.25)


def connections_by_job(clients: list[dict[str, str]], pid: int) -> dict[str, int]:
    marker = f"-{pid}:"
    names = [c["name"] for c in clients]
    return dict(Counter(n.rsplit(":", 1)[1] for n in names
                        if n.startswith("shape-gateway:") and marker in n))  # fmt: skip


def apply_cost_us(open_streams: int, events: int = 2000) -> float:
    """µs to apply one event on a replica holding `open_streams` streams of other users: the
    work is looking up the event's user, whatever else is open (its JSON log line included,
    written to /dev/null)."""
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        configure_logging("json", cache=False)
        try:
            return _apply_cost_us(open_streams, events)
        finally:
            structlog.reset_defaults()


def _apply_cost_us(open_streams: int, events: int) -> float:
    streams = OpenStreams()
    revocations = Revocations(MemoryStore(), 3600, streams, Metrics(), fail_closed=True)
    now = int(time.time())
    with contextlib.ExitStack() as held:
        for n in range(open_streams):
            held.enter_context(streams.track(Identity(f"other{n}", "acme", "admin"), live=True))
        started = time.perf_counter()
        for n in range(events):
            revocations.on_event(
                RevocationEvent(f"{now * 1000}-{n}", EventType.SESSION_REVOKED, now, f"gone{n}")
            )
        return (time.perf_counter() - started) / events * 1e6


def gc_pauses(log: Path, since: float) -> list[float]:
    """The replica's garbage-collection pauses since `since` (with --gc-probe), longest first."""
    events = [json.loads(line) for line in log.read_text().splitlines() if '"gc_pause"' in line]
    return sorted((float(e["ms"]) for e in events if e["at"] >= since), reverse=True)


def percentiles(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else ordered
    at = {"p50": q[49] if len(q) > 49 else ordered[0], "p90": q[89] if len(q) > 89 else ordered[-1],
          "p99": q[98] if len(q) > 98 else ordered[-1]}  # fmt: skip
    return ", ".join(f"{k} {v:.1f}" for k, v in at.items()) + f", max {ordered[-1]:.1f} ms"


def render(result: Result) -> str:
    lines = [
        f"held {result.held} streams ({result.settings['users']} users x a long-poll and an SSE "
        f"stream) over {result.settings['replicas']} replicas, in {result.seconds_to_hold:.0f} s",
        f"cut-off, POST -> all of the user's streams ended ({len(result.cutoff_ms)} "
        f"revocations): {percentiles(result.cutoff_ms)}",
        *(f"  {kind} alone: {percentiles(ms)}" for kind, ms in result.stream_ms.items()),
        f"while revoking the machine was {result.machine_busy:.0%} busy, "
        f"{result.others_share:.0%} by processes not of this benchmark"
        + (" (more than 10%: rerun on a quiet machine)" if result.others_share > 0.1 else ""),
        f"outcomes: {result.outcomes}; other streams ended: {result.collateral}; long-polls "
        f"answered at the upstream's timeout and sent again: {result.renewals}",
        f"memory per held stream (RSS, KiB) per replica: {result.rss_kib_per_stream}",
        f"Redis connections per replica, by job, most at once: {result.redis_connections}",
        f"CPU merely holding (long-polls cycling every {LONG_POLL:.0f} s), share of a core per "
        f"replica: {result.holding_cpu_share}",
        "applying one event (in process, no stream of its user open): "
        + ", ".join(f"{us:.1f} µs with {n:,} streams open" for n, us in result.apply_us.items()),
        *(
            [
                f"GC pauses >= 5 ms while revoking, per replica (ms, longest first): "
                f"{[p[:5] for p in result.gc_pauses_ms]}"
            ]
            if result.settings["gc_probe"]
            else []
        ),
        f"Redis memory per retained event (MEMORY USAGE / 10,000 entries, bytes): "
        f"{result.redis_bytes_per_event}",
    ]
    return "\n".join(lines)
