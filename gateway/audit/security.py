"""The gateway's own security events (every refused shape request, with its reason code)
appended to the audit stream without delaying the refusal: queued, written by one owned task,
up to `WRITE_AT_ONCE` at a time (one batch to Redis). The queue is bounded; if Redis is away
long enough to fill it, further events are counted as dropped (each is still in the request's
audit log line).

Whatever a caller sends, what is stored stays bounded:
- an event holds at most about `SECURITY_EVENT_BYTES`: a path longer than `PATH_BYTES` is cut,
  and the event says so (`path_truncated`, with the path's length in `path_bytes`);
- refusals the request budget does not charge (its own 429s, and refusals of revoked access,
  which admission gives before the budget) are folded per principal and reason: one event per
  `FOLD_SECONDS`, then one summary per `FOLD_SECONDS` while they go on, `folded` counting the
  refusals it stands for;
- the stream (`client_events.SECURITY_MAXLEN`) is capped by a byte budget.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import structlog
from redis.exceptions import RedisError

from gateway.audit.client_events import SECURITY_EVENT_BYTES, AuditSink
from gateway.errors import Code
from gateway.tasks import cancelling

log = structlog.get_logger(__name__)
QUEUE_LIMIT: Final = 10_000
WRITE_AT_ONCE: Final = 200
# With the path at most PATH_BYTES, an event stays near SECURITY_EVENT_BYTES (2 KiB): the
# other fields are short, identity claims at most 256 characters each.
PATH_BYTES: Final = SECURITY_EVENT_BYTES // 2
METHOD_CHARS: Final = 16
FOLD_SECONDS: Final = 10.0
MAX_FOLDING: Final = 10_000  # principals folded at once; past that, events are not folded
FOLDED: Final = frozenset(
    code.value
    for code in (Code.RATE_LIMITED, Code.TOO_MANY_LIVE_CONNECTIONS, Code.ACCESS_REVOKED,
                 Code.TENANT_SUSPENDED, Code.TOKEN_STALE, Code.SESSION_REVOKED)
)  # fmt: skip


def bounded(fields: Mapping[str, str]) -> dict[str, str]:
    """The event as stored: its path cut to PATH_BYTES of UTF-8 (saying so), its method
    shortened; text the path decoded to that is not valid UTF-8 is kept escaped."""
    event = dict(fields)
    path = event.get("path", "").encode("utf-8", "backslashreplace")
    event["path"] = path[:PATH_BYTES].decode("utf-8", "ignore")
    if len(path) > PATH_BYTES:
        event["path_truncated"] = "true"
        event["path_bytes"] = str(len(path))
    if "method" in event:
        event["method"] = event["method"][:METHOD_CHARS]
    return event


@dataclass(slots=True)
class _Fold:
    ends: float  # monotonic time the current window closes
    folded: int = 0
    last: Mapping[str, str] | None = None


class SecurityEvents:
    def __init__(self, sink: AuditSink, on_drop: Callable[[], None]) -> None:
        self.sink = sink
        self.queue: asyncio.Queue[Mapping[str, str]] = asyncio.Queue(QUEUE_LIMIT)
        self.on_drop = on_drop
        self._folds: dict[tuple[str, str, str], _Fold] = {}
        self._next_sweep = 0.0

    def record(self, fields: Mapping[str, str], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.sweep(now)
        reason = fields.get("reason", "")
        if reason in FOLDED:
            key = (fields.get("tenant", ""), fields.get("user", ""), reason)
            fold = self._folds.get(key)
            if fold is not None:
                fold.folded += 1
                fold.last = bounded(fields)  # held until the window closes: bounded too
                return
            if len(self._folds) < MAX_FOLDING:
                self._folds[key] = _Fold(ends=now + FOLD_SECONDS)
            fields = {**fields, "folded": "0"}
        self._put(bounded(fields))

    def _put(self, event: Mapping[str, str]) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.on_drop()

    def sweep(self, now: float) -> None:
        """Close the windows that ended: a summary for each that folded something (which
        opens the next window), the others forgotten. At most once a second."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + 1.0
        for key, fold in list(self._folds.items()):
            if now < fold.ends:
                continue
            if fold.folded and fold.last is not None:
                self._put({**fold.last, "folded": str(fold.folded)})
                self._folds[key] = _Fold(ends=now + FOLD_SECONDS)
            else:
                del self._folds[key]

    async def run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(1.0):
                    first = await self.queue.get()
            except TimeoutError:  # quiet: close the windows that ended
                self.sweep(time.monotonic())
                continue
            pending = [first]
            while len(pending) < WRITE_AT_ONCE and not self.queue.empty():
                pending.append(self.queue.get_nowait())
            while pending:
                results = await asyncio.gather(
                    *(self.sink.append_security(fields) for fields in pending),
                    return_exceptions=True,
                )
                failed = [f for f, r in zip(pending, results, strict=True) if r is not None]
                errors = [r for r in results if isinstance(r, RedisError | OSError)]
                if len(errors) < len(failed):  # not a Redis failure: a bug, let it surface
                    raise next(r for r in results if isinstance(r, BaseException)
                               and not isinstance(r, RedisError | OSError))  # fmt: skip
                pending = failed
                if pending:
                    if cancelling():
                        raise asyncio.CancelledError
                    log.warning("security_event_write_failed", reason=str(errors[0]))
                    await asyncio.sleep(1.0)
