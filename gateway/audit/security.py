"""The gateway's own security events (every refused shape request, with its reason code)
appended to the audit stream without delaying the refusal: queued, written by one owned task.
The queue is bounded; if Redis is away long enough to fill it, further events are counted as
dropped (each is still in the request's audit log line)."""

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
            fields = await self.queue.get()
            while True:
                try:
                    await self.sink.append_security(fields)
                    break
                except (RedisError, OSError) as error:
                    if cancelling():
                        raise asyncio.CancelledError from error
                    log.warning("security_event_write_failed", reason=str(error))
                    await asyncio.sleep(1.0)
