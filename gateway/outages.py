"""What is failing now among the gateway's dependencies (each Redis job, each Electric upstream):
since when, how often, the last error, and what to check. Nothing fails silently: an outage is
logged when it starts, again every `REPEAT_SECONDS` while it lasts, and when it ends; the admin
API (`GET /admin/status`) and the metrics read the same record.

Callers report each attempt (`failed`, `succeeded`); a success while nothing failed is one dict
lookup, so the hot path (a batch of Redis commands) can report every outcome. Targets are
`host:port` or a URL without credentials: never a password.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import structlog

log = structlog.get_logger(__name__)

REPEAT_SECONDS: Final = 30.0
# The log field naming the failing part, per kind of dependency.
LABELS: Final = {"redis": "job", "upstream": "upstream"}


class Listener(Protocol):
    def __call__(self, kind: str, name: str, *, up: bool) -> None: ...


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Outage:
    kind: str  # "redis" or "upstream"
    name: str  # the Redis job (revocations, limits, audit) or the upstream's name
    target: str  # host:port or a URL, without credentials
    hint: str  # what to check
    last_error: str
    since: float  # epoch seconds, for people
    started: float  # monotonic, for durations
    logged: float  # monotonic: when it was last logged
    failures: int = 1

    def as_json(self, now: float) -> dict[str, Any]:
        return {
            "target": self.target,
            "since": iso(self.since),
            "for_seconds": round(now - self.started, 1),
            "failures": self.failures,
            "last_error": self.last_error,
            "check": self.hint,
        }


class Outages:
    def __init__(
        self, repeat: float = REPEAT_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.repeat = repeat
        self.clock = clock
        self._current: dict[tuple[str, str], Outage] = {}
        self.listeners: list[Listener] = []

    def failed(self, kind: str, name: str, error: str, *, target: str, hint: str) -> None:
        """One failed attempt: logged if it starts an outage or `repeat` seconds passed."""
        now = self.clock()
        outage = self._current.get((kind, name))
        if outage is None:
            outage = Outage(kind, name, target, hint, error, time.time(), now, now)
            self._current[(kind, name)] = outage
            self._log(outage, now, first=True)
            for listener in self.listeners:
                listener(kind, name, up=False)
            return
        outage.failures += 1
        outage.last_error, outage.target, outage.hint = error, target, hint
        if now - outage.logged >= self.repeat:
            outage.logged = now
            self._log(outage, now, first=False)

    def succeeded(self, kind: str, name: str) -> None:
        """One attempt that worked: ends the outage, if there was one."""
        outage = self._current.pop((kind, name), None)
        if outage is None:
            return
        log.info(
            f"{kind}_recovered",
            **{LABELS[kind]: name},
            target=outage.target,
            down_seconds=round(self.clock() - outage.started, 1),
            failures=outage.failures,
        )
        for listener in self.listeners:
            listener(kind, name, up=True)

    def _log(self, outage: Outage, now: float, *, first: bool) -> None:
        log.error(
            f"{outage.kind}_unavailable",
            **{LABELS[outage.kind]: outage.name},
            target=outage.target,
            reason=outage.last_error,
            check=outage.hint,
            since=iso(outage.since),
            **(
                {}
                if first
                else {"for_seconds": round(now - outage.started), "failures": outage.failures}
            ),
        )

    def get(self, kind: str, name: str) -> Outage | None:
        return self._current.get((kind, name))

    def of_kind(self, kind: str) -> dict[str, Outage]:
        return {name: o for (k, name), o in self._current.items() if k == kind}
