"""The load generator, run as its own process so that neither server pays for it.

`python -m bench.load SPEC.json` reads a RateSpec or HoldSpec (written by bench.http), runs it
and prints one JSON line: a RateResult or HoldResult. Both modes are bounded in count and time
and stop by themselves.

- rate: `concurrency` workers on kept-alive connections send the same GET back to back, after
  a warm-up that is not measured, until `duration` passes or `max_requests` are sent.
- hold: one live request per token, opened in waves (clients arriving over half a second
  rather than in one instant), each awaited until its answer arrives.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import aiohttp
from yarl import URL

WARMUP_SECONDS: Final = 5.0  # the warm-up ends at its count or after this, whichever is first

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RateSpec:
    url: str  # sent byte for byte (already percent-encoded)
    headers: dict[str, str]
    concurrency: int
    duration: float
    max_requests: int
    warmup_requests: int
    request_timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class HoldSpec:
    url: str
    headers: dict[str, str]
    tokens: list[str]  # one request per token, as `Authorization: Bearer <token>`
    request_timeout: float
    wave: int = 100  # requests started together
    wave_interval: float = 0.05  # seconds between waves
    change_marker: str = '"operation":"insert"'  # in the body of a poll woken by a change


@dataclass(frozen=True, slots=True)
class Latencies:
    """Milliseconds; nearest-rank percentiles over every completed request."""

    p50: float
    p90: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, seconds: list[float]) -> Latencies:
        if not seconds:
            return cls(0.0, 0.0, 0.0, 0.0, 0.0)
        ordered = sorted(seconds)

        def rank(p: float) -> float:
            return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)] * 1e3

        return cls(
            rank(50), rank(90), rank(99), ordered[-1] * 1e3, sum(ordered) / len(ordered) * 1e3
        )


@dataclass(frozen=True, slots=True)
class RateResult:
    ok: int  # measured requests answered 200
    errors: int  # measured requests not answered 200 (statuses) or failed (first_error)
    statuses: dict[str, int]
    first_error: str | None
    seconds: float
    body_bytes: int  # as received (compressed when the server compressed)
    latency: Latencies
    sent: int  # every request, warm-up included (for CPU per request)
    cpu_seconds: float  # the load generator's own CPU during the measured part
    process_cpu_seconds: float  # ... and in all, start-up and warm-up included

    @property
    def requests_per_second(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RateResult:
        return cls(**{**data, "latency": Latencies(**data["latency"])})


@dataclass(frozen=True, slots=True)
class HoldResult:
    sent: int
    statuses: dict[str, int]
    woken: int  # answered with the change (not a timeout's bare up-to-date)
    first_error: str | None
    latency: Latencies  # how long each poll was held
    first_done: float  # wall clock (time.time()) of the first and last answers
    last_done: float

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HoldResult:
        return cls(**{**data, "latency": Latencies(**data["latency"])})


@dataclass(slots=True)
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    body_bytes: int = 0
    first_error: str | None = None

    def add(self, status: int, size: int, seconds: float) -> None:
        self.statuses[str(status)] += 1
        self.body_bytes += size
        self.latencies.append(seconds)

    def fail(self, error: BaseException) -> None:
        self.statuses[type(error).__name__] += 1
        if self.first_error is None:
            self.first_error = f"{type(error).__name__}: {error}"

    @property
    def ok(self) -> int:
        return self.statuses["200"]

    @property
    def total(self) -> int:
        return sum(self.statuses.values())


async def fetch(
    session: aiohttp.ClientSession, url: URL, headers: Mapping[str, str], tally: Tally
) -> bytes:
    started = time.perf_counter()
    try:
        async with session.get(url, headers=headers) as response:
            body = await response.read()
    except (aiohttp.ClientError, TimeoutError) as error:
        tally.fail(error)
        return b""
    tally.add(response.status, len(body), time.perf_counter() - started)
    return body


async def drive(
    session: aiohttp.ClientSession,
    spec: RateSpec,
    *,
    budget: int,
    seconds: float,
    tally: Tally,
) -> None:
    """`spec.concurrency` workers, each sending its next request as soon as one is answered."""
    url = URL(spec.url, encoded=True)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    remaining = budget

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0 and loop.time() < deadline:
            remaining -= 1
            await fetch(session, url, spec.headers, tally)

    await asyncio.gather(*(worker() for _ in range(spec.concurrency)))


async def run_rate(spec: RateSpec) -> RateResult:
    connector = aiohttp.TCPConnector(limit=spec.concurrency)
    timeout = aiohttp.ClientTimeout(total=spec.request_timeout)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=False
    ) as session:
        warmup = Tally()
        await drive(
            session, spec, budget=spec.warmup_requests, seconds=WARMUP_SECONDS, tally=warmup
        )
        measured = Tally()
        cpu, started = time.process_time(), time.perf_counter()
        await drive(session, spec, budget=spec.max_requests, seconds=spec.duration, tally=measured)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return RateResult(
        ok=measured.ok,
        errors=measured.total - measured.ok,
        statuses=dict(measured.statuses),
        first_error=measured.first_error,
        seconds=elapsed,
        body_bytes=measured.body_bytes,
        latency=Latencies.of(measured.latencies),
        sent=warmup.total + measured.total,
        cpu_seconds=cpu,
        process_cpu_seconds=time.process_time(),
    )


async def run_hold(spec: HoldSpec) -> HoldResult:
    url = URL(spec.url, encoded=True)
    marker = spec.change_marker.encode()
    tally = Tally()
    woken = 0
    done: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=spec.request_timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def poll(index: int, token: str) -> None:
            nonlocal woken
            await asyncio.sleep(index // spec.wave * spec.wave_interval)
            headers = {**spec.headers, "Authorization": f"Bearer {token}"}
            body = await fetch(session, url, headers, tally)
            done.append(time.time())
            woken += marker in body

        await asyncio.gather(*(poll(i, token) for i, token in enumerate(spec.tokens)))
    return HoldResult(
        sent=len(spec.tokens),
        statuses=dict(tally.statuses),
        woken=woken,
        first_error=tally.first_error,
        latency=Latencies.of(tally.latencies),
        first_done=min(done, default=0.0),
        last_done=max(done, default=0.0),
    )


def run(coroutine: Awaitable[T]) -> T:
    """On uvloop when installed (as the gateway runs), so the generator costs less CPU."""

    async def main() -> T:
        return await coroutine

    try:
        import uvloop  # noqa: PLC0415 - optional, the `speed` extra
    except ImportError:
        return asyncio.run(main())
    return uvloop.run(main())


def main(argv: list[str]) -> int:
    document = json.loads(Path(argv[0]).read_text())
    mode = document.pop("mode")
    result: RateResult | HoldResult
    if mode == "rate":
        result = run(run_rate(RateSpec(**document)))
    elif mode == "hold":
        result = run(run_hold(HoldSpec(**document)))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(dataclasses.asdict(result)), flush=True)
    return 0


def write_spec(path: Path, spec: RateSpec | HoldSpec) -> Path:
    mode = "rate" if isinstance(spec, RateSpec) else "hold"
    path.write_text(json.dumps({"mode": mode, **dataclasses.asdict(spec)}))
    return path


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
