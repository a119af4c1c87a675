"""Where revocation events live: a Redis stream shared by every replica, or (without
REDIS_URL) this process's memory. Both hand each event to `on_event` in stream order.

The Redis follower never loses an event: it reads the whole stream at start-up, then blocks on
XREAD from the last id it applied, so a disconnect, a restart or a failover resumes exactly
where it left off. After each read, and after each reconnection, it checks that Redis still has
what it applied: a Redis that restarted empty (its epoch key vanished with the stream) or one
that lost the stream's tail (a promoted replica that missed the last entries, an older
snapshot: the last entry we read is gone) gets the events this replica holds back (see
restore.py), and the follower reads the stream again from its start, applying by original id,
so nothing is applied twice.

It reads from the one node that holds the stream (redis/node.py), on a connection of its own,
and with Sentinel only while a majority of the sentinels name that node master: it moves to a
newly promoted master as soon as they do, even while the old one hangs. Every wait fits the
stale limit: a read waits `BLOCK_MS` plus a margin, and reconnection attempts come at most
`RETRY_MAX` apart, so a failover that Sentinel decides within about 4 s costs no readiness and
an event acknowledged on the new master is applied well within a second.

Publishing and trimming: publisher.py.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Final, Protocol, cast

import redis.asyncio as aioredis
import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MovedError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.errors import StoreUnavailableError
from gateway.redis.client import REDIS_ERRORS
from gateway.redis.keys import revocation_epoch, revocation_stream
from gateway.redis.node import KeyNode, Node, NodeChangedError
from gateway.redis.url import Topology
from gateway.revocation.events import (
    EventError,
    EventRequest,
    RevocationEvent,
    event_from_entry,
    stream_id_key,
    stream_id_seconds,
)
from gateway.revocation.publisher import NotReplicatedError, OutcomeUnknownError, Publisher
from gateway.revocation.restore import restore_events
from gateway.tasks import cancelling, first_of

log = structlog.get_logger(__name__)

STALE_AFTER: Final = 5.0  # seconds without a successful read before the view counts as stale
BLOCK_MS: Final = 500  # a blocked read returns at least this often, so the view stays fresh
# A read's answer may be late by this much (an event loop busy with thousands of requests),
# and still the reconnection comes before the view goes stale.
READ_TIMEOUT: Final = BLOCK_MS / 1000 + 3.0
RETRY_FIRST: Final = 0.05  # seconds before reconnecting, doubled after each failure...
RETRY_MAX: Final = 0.25  # ...up to this: within a second of the new master, with a margin
PAGE: Final = 1000
# An entry this much younger than the retention is not yet due for trimming by any replica
# (each trims once a minute, on its own clock): missing from Redis, it was lost, not trimmed.
VERIFY_MARGIN: Final = 180.0
NAMED_KEPT: Final = 100_000  # event_ids a one-process store remembers, the latest
OnEvent = Callable[[RevocationEvent], None]
Entries = list[tuple[str, dict[str, str]]]
Retained = Callable[[], Iterable[RevocationEvent]]


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
        self._named: dict[str, RevocationEvent] = {}  # event_id -> the event it named

    async def publish(self, request: EventRequest) -> RevocationEvent:
        request = request.named()
        assert request.event_id is not None
        if request.event_id in self._named:
            return self._named[request.event_id]  # published before: nothing new
        ms = max(int(time.time() * 1000), self._last_ms)
        seq = next(self._sequence) if ms == self._last_ms else 0
        if ms != self._last_ms:
            self._sequence = itertools.count(1)
        self._last_ms = ms
        event = event_from_entry(f"{ms}-{seq}", request.fields())
        self._named[request.event_id] = event
        if len(self._named) > NAMED_KEPT:
            del self._named[next(iter(self._named))]
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
    """The stream in Redis (any topology). Two connections to the node holding it: the
    follower's, and the publisher's (publish and trim, in turn)."""

    def __init__(
        self, nodes: KeyNode, prefix: str, wait_ms: int = 1000, retention: int = 86_400
    ) -> None:
        self.nodes = nodes
        self.prefix = prefix
        self.key = revocation_stream(prefix)
        self._epoch_key = revocation_epoch(prefix)
        self.retention = retention
        self.publisher = Publisher(nodes, prefix, wait_ms, retention)
        self._epoch: str | None = None
        self._last_id = "0-0"
        self._last_ok = float("-inf")
        self._retry = RETRY_FIRST
        self.connected = False
        self._closing = False

    async def publish(self, request: EventRequest) -> RevocationEvent:
        """See publisher.py: the event, or NotReplicatedError, OutcomeUnknownError, or
        StoreUnavailableError for any other Redis error."""
        try:
            return await self.publisher.publish(request)
        except (NotReplicatedError, OutcomeUnknownError):
            raise  # Redis's error types too, but each an answer of its own
        except REDIS_ERRORS as error:
            raise StoreUnavailableError(str(error)) from error

    def fresh(self, now: float) -> bool:
        return now - self._last_ok <= STALE_AFTER

    def _deliver(self, entries: Entries, on_event: OnEvent) -> None:
        for stream_id, fields in entries:
            self._last_id = stream_id
            try:
                event = event_from_entry(stream_id, fields)
            except EventError as error:
                log.error("revocation_entry_invalid", id=stream_id, reason=str(error))  # noqa: TRY400
                continue
            on_event(event)

    async def _catch_up(self, redis: aioredis.Redis, on_event: OnEvent) -> None:
        """Everything after the last applied id, page by page."""
        while True:
            entries = cast(
                Entries, await redis.xrange(self.key, min=f"({self._last_id}", count=PAGE)
            )
            self._deliver(entries, on_event)
            if len(entries) < PAGE:
                return

    async def _lost(self, redis: aioredis.Redis) -> bool:
        """Whether the last entry we read is gone from a stream that should have it. Redis
        replicates in order, so a promoted replica or an older snapshot holds a prefix of what
        the master had: if our last entry is there, so is everything we read before it. Gone
        but older than the retention, it was trimmed, not lost."""
        if self._last_id == "0-0":
            return False
        if await redis.xrange(self.key, min=self._last_id, max=self._last_id):
            return False
        return stream_id_seconds(self._last_id) >= time.time() - self.retention + VERIFY_MARGIN

    async def _check(self, redis: aioredis.Redis, retained: Retained) -> bool:
        """Notice a Redis that lost what we applied and give it back what we hold; True when
        it did, and the stream must be read again from its start. Two lookups: the epoch (gone
        with a stream Redis lost entirely) and our last entry (gone with a stream's tail)."""
        epoch = cast(str | None, await redis.get(self._epoch_key))
        if epoch is None:
            await redis.set(self._epoch_key, secrets.token_hex(8), nx=True)
            epoch = cast(str | None, await redis.get(self._epoch_key))
        reset = self._epoch is not None and epoch != self._epoch
        self._epoch = epoch
        if reset:
            log.warning("revocation_stream_reset", last_applied=self._last_id)
        elif await self._lost(redis):
            log.warning("revocation_stream_behind", last_applied=self._last_id)
        else:
            return False
        restored, copied = await restore_events(
            redis, self.prefix, list(retained()), self.retention * 1000
        )
        log.warning("revocation_stream_restored", restored=restored, copied=copied)
        self._last_id = "0-0"  # read it all again: what is new to us is applied, the rest not
        return True

    async def follow(self, on_event: OnEvent, retained: Retained) -> None:
        while True:
            try:
                node = await self.nodes.locate()
                await self._follow_node(node, on_event, retained)
            except NodeChangedError as moved:
                if cancelling():
                    raise asyncio.CancelledError from moved
                log.info("revocation_stream_master_changed", reason=str(moved))
            except REDIS_ERRORS as error:
                if cancelling():
                    raise asyncio.CancelledError from error
                if self._closing:
                    return  # the app is shutting down and closed our client
                if isinstance(error, MovedError):
                    self.nodes.redirected(error)  # the slot moved: go there (nearly) at once
                    await asyncio.sleep(RETRY_FIRST)
                    continue
                if isinstance(error, RedisConnectionError | RedisTimeoutError | OSError):
                    self.nodes.forget()
                if self.connected:
                    log.warning("revocation_stream_unreachable", reason=str(error))
                self.nodes.report(error)  # logged when it starts, then every 30 s
                self.connected = False
                await asyncio.sleep(self._retry)
                self._retry = min(self._retry * 2, RETRY_MAX)

    async def _follow_node(self, node: Node, on_event: OnEvent, retained: Retained) -> None:
        """Read from `node` until it fails, or (Sentinel) stops being the master."""
        redis = self.nodes.connect(node, READ_TIMEOUT)
        try:  # the watch first: when the master changes, the read fails too
            await first_of(self.nodes.watch(node), self._read(redis, on_event, retained))
        finally:
            await redis.aclose()

    async def _read(self, redis: aioredis.Redis, on_event: OnEvent, retained: Retained) -> None:
        if self.nodes.topology is Topology.SENTINEL:
            role = await redis.role()
            if str(role[0]) != "master":  # named, but not promoted yet
                raise RedisConnectionError("the server Sentinel names is not a master yet")
        await self._check(redis, retained)  # at start, and after a lost connection
        await self._catch_up(redis, on_event)
        self._last_ok = time.monotonic()
        self.nodes.report(None)
        if not self.connected:
            log.info("revocation_stream_following", key=self.key, last_id=self._last_id)
        self.connected, self._retry = True, RETRY_FIRST
        while True:
            reply = cast(
                list[tuple[str, Entries]],
                await redis.xread({self.key: self._last_id}, block=BLOCK_MS, count=PAGE),
            )
            for _, entries in reply:
                self._deliver(entries, on_event)
            if await self._check(redis, retained):
                await self._catch_up(redis, on_event)
            self._last_ok = time.monotonic()

    async def trim(self, before: RevocationEvent | None, cutoff_ms: int) -> None:
        """Drop entries older than the retention, but never an active suspension's."""
        limit = cutoff_ms
        if before is not None:
            limit = min(limit, stream_id_key(before.id)[0])
        try:
            await self.publisher.trim(limit)
        except REDIS_ERRORS as error:
            log.warning("revocation_trim_failed", reason=str(error))

    async def close(self) -> None:
        self._closing = True
        await self.publisher.close()
        await self.nodes.aclose()
