"""Failures on demand for the next N shape requests: 503, 500, slow headers, a cut body."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

FaultKind = Literal["overloaded", "internal_error", "delay", "abort"]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected failure, applied to `count` consecutive `/v1/shape` requests (not OPTIONS).

    overloaded:     503 `concurrent_request_limit_exceeded` with `retry-after: <retry_after>`
    internal_error: 500 `{"error":"Internal server error"}` (Electric's crash body)
    delay:          sleep `seconds` before answering (before any response header is sent)
    abort:          close the connection after `after_bytes` bytes of a streamed 200 body
    """

    kind: FaultKind
    count: int = 1
    retry_after: int = 5
    seconds: float = 0.0
    after_bytes: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        if self.count < 1 or self.seconds < 0 or self.after_bytes < 0 or self.retry_after < 0:
            raise ValueError("count must be >= 1 and seconds/after_bytes/retry_after >= 0")

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        """Build from a `/_control/faults` body; ValueError names what is wrong."""
        if not isinstance(data, dict):
            raise TypeError("body must be a JSON object")
        unknown = set(data) - {"kind", "count", "retry_after", "seconds", "after_bytes"}
        if unknown:
            raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
        try:
            return cls(**data)
        except TypeError as error:
            raise ValueError(str(error)) from None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class FaultPlan:
    """The queue of pending faults; each request takes at most one, first in first out."""

    def __init__(self) -> None:
        self._queue: list[list[Any]] = []

    def add(self, fault: Fault) -> None:
        self._queue.append([fault, fault.count])

    def clear(self) -> None:
        self._queue.clear()

    def pending(self) -> list[Fault]:
        """What is left, with `count` the remaining number of requests."""
        return [Fault(**{**fault.to_json(), "count": left}) for fault, left in self._queue]

    def take(self) -> Fault | None:
        if not self._queue:
            return None
        entry = self._queue[0]
        entry[1] -= 1
        if entry[1] <= 0:
            self._queue.pop(0)
        fault: Fault = entry[0]
        return fault
