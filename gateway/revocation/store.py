"""Where revocation events live: a Redis stream shared by every replica, or (without
REDIS_URL) this process's memory. Both hand each event to `on_event` in stream order.

The Redis follower never loses an event: it reads the whole stream at start-up, then blocks on
XREAD from the last id it applied, so a disconnect or a restart resumes exactly where it left
off. Redis on these deployments may keep nothing on disk: a restart that loses the stream is
noticed through an epoch key that vanishes with it, and one replica (chosen by SET NX)
re-appends every event it still holds, with its original id and time, so replicas started
later still enforce them. Appends are de-duplicated by original id when applied.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol, cast

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from gateway.redis_client import make_redis
from gateway.revocation.events import (
    EventError,
    EventRequest,
    RevocationEvent,
    event_from_entry,
    stream_id_key,
)
from gateway.tasks import cancelling

log = structlog.get_logger(__name__)

STALE_AFTER: Final = 5.0  # seconds without a successful read before the view counts as stale
BLOCK_MS: Final = 1000
PAGE: Final = 1000
OnEvent = Callable[[RevocationEvent], None]
Entries = list[tuple[str, dict[str, str]]]


class RevocationStore(Protocol):
    async def publish(self, request: EventRequest) -> RevocationEvent: ...

    async def follow(
        self, on_event: OnEvent, retained: Callable[[], Iterable[RevocationEvent]]
    ) -> None:
        """Deliver every event, past and future, to `on_event`; runs until cancelled."""

    def fresh(self, now: float) -> bool: ...

    async def trim(self, before: RevocationEvent | None, cutoff_ms: int) -> None: ...

    async def close(self) -> None: ...


class MemoryStore:
    """One process, no Redis: events live as long as the process."""

    def __init__(self) -> None:
        self._on_event: OnEvent | None = None
        self._pending: list[RevocationEvent] = []
        self._sequence = itertools.count()
        self._last_ms = 0

    async def publish(self, request: EventRequest) -> RevocationEvent:
        ms = max(int(time.time() * 1000), self._last_ms)
        seq = next(self._sequence) if ms == self._last_ms else 0
        if ms != self._last_ms:
            self._sequence = itertools.count(1)
        self._last_ms = ms
        event = event_from_entry(f"{ms}-{seq}", request.fields())
        if self._on_event is None:
            self._pending.append(event)
        else:
            self._on_event(event)
        return event

    async def follow(
        self, on_event: OnEvent, retained: Callable[[], Iterable[RevocationEvent]]
    ) -> None:
        self._on_event = on_event
        for event in self._pending:
            on_event(event)
        self._pending.clear()
        await asyncio.Event().wait()

    def fresh(self, now: float) -> bool:
        return True

    async def trim(self, before: RevocationEvent | None, cutoff_ms: int) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisStore:
    def __init__(self, url: str, prefix: str, pool_size: int = 4) -> None:
        self.client: aioredis.Redis = make_redis(
            url, socket_timeout=BLOCK_MS / 1000 + 4, decode_responses=True, pool_size=pool_size
        )
        self.key = f"{prefix}:revocations"
        self._epoch_key = f"{prefix}:revocations:epoch"
        self._epoch: str | None = None
        self._last_id = "0-0"
        self._last_ok = float("-inf")
        self.connected = False
        self._closing = False

    async def publish(self, request: EventRequest) -> RevocationEvent:
        """Append to the stream (Redis assigns the id, hence the time). Raises RedisError."""
        fields = request.fields()
        stream_id = await self.client.xadd(self.key, cast(Any, fields))
        return event_from_entry(str(stream_id), fields)

    def fresh(self, now: float) -> bool:
        return now - self._last_ok <= STALE_AFTER

    def _deliver(self, entries: list[tuple[str, dict[str, str]]], on_event: OnEvent) -> None:
        for stream_id, fields in entries:
            self._last_id = stream_id
            try:
                event = event_from_entry(stream_id, fields)
            except EventError as error:
                log.error("revocation_entry_invalid", id=stream_id, reason=str(error))  # noqa: TRY400
                continue
            on_event(event)

    async def _catch_up(self, on_event: OnEvent) -> None:
        """Everything after the last applied id, page by page."""
        while True:
            entries = cast(
                Entries, await self.client.xrange(self.key, min=f"({self._last_id}", count=PAGE)
            )
            self._deliver(entries, on_event)
            if len(entries) < PAGE:
                return

    async def _check_epoch(self, retained: Callable[[], Iterable[RevocationEvent]]) -> None:
        """Notice a Redis that lost its data, and restore the stream from what we hold."""
        epoch = cast(str | None, await self.client.get(self._epoch_key))
        if epoch is not None and epoch == self._epoch:
            return
        if epoch is None:
            fresh_epoch = secrets.token_hex(8)
            if await self.client.set(self._epoch_key, fresh_epoch, nx=True):
                epoch = fresh_epoch
                if self._epoch is not None:  # we saw another epoch before: Redis was reset
                    await self._restore(retained())
            else:
                epoch = cast(str | None, await self.client.get(self._epoch_key))
        if self._epoch is not None and epoch != self._epoch:
            log.warning("revocation_stream_reset", previous=self._epoch, current=epoch)
        self._epoch = epoch

    async def _restore(self, events: Iterable[RevocationEvent]) -> None:
        restored = 0
        for event in events:
            fields = EventRequest(
                event.type, event.user, event.tenant, event.role, event.session
            ).fields()
            restored_fields = {**fields, "origin": event.id, "at": str(event.at)}
            await self.client.xadd(self.key, cast(Any, restored_fields))
            restored += 1
        log.warning("revocation_stream_restored", events=restored)

    async def follow(
        self, on_event: OnEvent, retained: Callable[[], Iterable[RevocationEvent]]
    ) -> None:
        backoff = 0.1
        while True:
            try:
                await self._check_epoch(retained)
                await self._catch_up(on_event)
                self._last_ok = time.monotonic()
                if not self.connected:
                    log.info("revocation_stream_following", key=self.key, last_id=self._last_id)
                self.connected, backoff = True, 0.1
                while True:
                    reply = cast(
                        list[tuple[str, Entries]],
                        await self.client.xread(
                            {self.key: self._last_id}, block=BLOCK_MS, count=PAGE
                        ),
                    )
                    for _, entries in reply:
                        self._deliver(entries, on_event)
                    self._last_ok = time.monotonic()
                    await self._check_epoch(retained)
            except (RedisError, OSError) as error:
                if cancelling():
                    raise asyncio.CancelledError from error
                if self._closing:
                    return  # the app is shutting down and closed our client
                if self.connected:
                    log.warning("revocation_stream_unreachable", reason=str(error))
                self.connected = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    async def trim(self, before: RevocationEvent | None, cutoff_ms: int) -> None:
        """Drop entries older than the retention, but never an active suspension's."""
        limit = cutoff_ms
        if before is not None:
            limit = min(limit, stream_id_key(before.id)[0])
        try:
            await self.client.xtrim(self.key, minid=str(limit), approximate=False)
        except RedisError as error:
            log.warning("revocation_trim_failed", reason=str(error))

    async def close(self) -> None:
        self._closing = True
        await self.client.aclose()
