"""The gateway's own security events (every refused shape request, with its reason code)
appended to the audit stream without delaying the refusal: queued, written by one owned task,
up to `WRITE_AT_ONCE` at a time (one batch to Redis). The queue is bounded; if Redis is away
long enough to fill it, further events are counted as dropped (each is still in the request's
audit log line)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Final

import structlog
from redis.exceptions import RedisError

from gateway.audit.client_events import AuditSink
from gateway.tasks import cancelling

log = structlog.get_logger(__name__)
QUEUE_LIMIT: Final = 10_000
WRITE_AT_ONCE: Final = 200


class SecurityEvents:
    def __init__(self, sink: AuditSink, on_drop: Callable[[], None]) -> None:
        self.sink = sink
        self.queue: asyncio.Queue[Mapping[str, str]] = asyncio.Queue(QUEUE_LIMIT)
        self.on_drop = on_drop

    def record(self, fields: Mapping[str, str]) -> None:
        try:
            self.queue.put_nowait(fields)
        except asyncio.QueueFull:
            self.on_drop()

    async def run(self) -> None:
        while True:
            pending = [await self.queue.get()]
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
