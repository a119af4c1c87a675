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

A publish is acknowledged only once a Redis replica has the entry, when the master has
replicas: XADD and `WAIT 1 <timeout>` on one connection. With no replica connected there is
nothing to wait for; when WAIT times out the entry is on the master only, applied by the
replicas that read it, but a failover now could lose it: `NotReplicatedError` says so and the
caller is told to publish again (a repeated revocation changes nothing).
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
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from gateway.redis_client import REDIS_ERRORS, RedisClient
from gateway.redis_keys import revocation_epoch, revocation_origins, revocation_stream
from gateway.redis_url import Topology
from gateway.revocation.events import (
    EventError,
    EventRequest,
    RevocationEvent,
    event_from_entry,
    stream_id_key,
    stream_id_seconds,
)
from gateway.revocation.restore import restore_events
from gateway.tasks import cancelling

log = structlog.get_logger(__name__)

STALE_AFTER: Final = 5.0  # seconds without a successful read before the view counts as stale
BLOCK_MS: Final = 1000
PAGE: Final = 1000
# An entry this much younger than the retention is not yet due for trimming by any replica
# (each trims once a minute, on its own clock): missing from Redis, it was lost, not trimmed.
VERIFY_MARGIN: Final = 180.0
OnEvent = Callable[[RevocationEvent], None]
Entries = list[tuple[str, dict[str, str]]]
Retained = Callable[[], Iterable[RevocationEvent]]


def socket_timeout(wait_ms: int) -> float:
    """Seconds a revocation client's socket may wait for an answer: longer than the follower's
    blocking read and a publish's WAIT."""
    return (BLOCK_MS + wait_ms) / 1000 + 4


class NotReplicatedError(RedisError):
    """The entry is on the Redis master, but no replica confirmed it within the wait."""

    def __init__(self, event: RevocationEvent, wait_ms: int) -> None:
        self.event = event
        super().__init__(
            f"event {event.id} reached the Redis master but no replica confirmed it within "
            f"{wait_ms} ms: it is enforced, but a failover now could lose it; publish it again "
            "(a repeated revocation changes nothing)"
        )


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
    """The stream in Redis (any topology). At most two connections: the follower's, and one
    for writes (publish, trim), taken in turn."""

    def __init__(
        self, client: RedisClient, prefix: str, wait_ms: int = 1000, retention: int = 86_400
    ) -> None:
        self.client = client
        self.key = revocation_stream(prefix)
        self._epoch_key = revocation_epoch(prefix)
        self._origins_key = revocation_origins(prefix)
        self.wait_ms = wait_ms
        self.retention = retention
        self._writer = asyncio.Lock()
        self._epoch: str | None = None
        self._last_id = "0-0"
        self._last_ok = float("-inf")
        self.connected = False
        self._closing = False

    async def publish(self, request: EventRequest) -> RevocationEvent:
        """Append to the stream (Redis assigns the id, hence the time) and, when the master has
        replicas, wait for one to have it. Raises NotReplicatedError, or RedisError."""
        fields = request.fields()
        redis = self.client.redis
        async with self._writer:
            replicas = await self._replicas() if self.wait_ms else 0
            pipe = redis.pipeline(transaction=False)
            pipe.xadd(self.key, cast(Any, fields))
            if replicas:  # on the XADD's connection: WAIT counts this connection's writes
                node = await self.client.node_of(self.key)
                target = {} if node is None else {"target_nodes": node}
                pipe.execute_command("WAIT", 1, self.wait_ms, **target)
            results = await pipe.execute()
        event = event_from_entry(str(results[0]), fields)
        if replicas and int(results[1]) < 1:  # the caller says so (the 503's audit line)
            raise NotReplicatedError(event, self.wait_ms)
        return event

    async def _replicas(self) -> int:
        """Replicas connected to the master that holds the stream."""
        node = await self.client.node_of(self.key)
        target = {} if node is None else {"target_nodes": node}
        info = await self.client.redis.info("replication", **target)
        return int(info.get("connected_slaves", 0))

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

    async def _catch_up(self, on_event: OnEvent) -> None:
        """Everything after the last applied id, page by page."""
        while True:
            entries = cast(
                Entries,
                await self.client.redis.xrange(self.key, min=f"({self._last_id}", count=PAGE),
            )
            self._deliver(entries, on_event)
            if len(entries) < PAGE:
                return

    async def _confirm_master(self) -> None:
        """Sentinel: the server we read must still be the master. (A demoted master ends our
        blocked read, but a read issued just after would be served by it as a replica.)"""
        redis = self.client.redis
        if isinstance(redis, aioredis.Redis):
            role = await redis.role()
            if role[0] != "master":
                await redis.connection_pool.disconnect()
                raise RedisConnectionError("the server followed is no longer the master")

    async def _lost(self) -> bool:
        """Whether the last entry we read is gone from a stream that should have it. Redis
        replicates in order, so a promoted replica or an older snapshot holds a prefix of what
        the master had: if our last entry is there, so is everything we read before it. Gone
        but older than the retention, it was trimmed, not lost."""
        if self._last_id == "0-0":
            return False
        if await self.client.redis.xrange(self.key, min=self._last_id, max=self._last_id):
            return False
        return stream_id_seconds(self._last_id) >= time.time() - self.retention + VERIFY_MARGIN

    async def _check(self, retained: Retained) -> bool:
        """Notice a Redis that lost what we applied and give it back what we hold; True when
        it did, and the stream must be read again from its start. Two lookups: the epoch (gone
        with a stream Redis lost entirely) and our last entry (gone with a stream's tail)."""
        if self.client.address.topology is Topology.SENTINEL:
            await self._confirm_master()
        redis = self.client.redis
        epoch = cast(str | None, await redis.get(self._epoch_key))
        if epoch is None:
            await redis.set(self._epoch_key, secrets.token_hex(8), nx=True)
            epoch = cast(str | None, await redis.get(self._epoch_key))
        reset = self._epoch is not None and epoch != self._epoch
        self._epoch = epoch
        if reset:
            log.warning("revocation_stream_reset", last_applied=self._last_id)
        elif await self._lost():
            log.warning("revocation_stream_behind", last_applied=self._last_id)
        else:
            return False
        restored, copied = await restore_events(
            self.client, self.key, self._origins_key, list(retained()), self.retention * 1000
        )
        log.warning("revocation_stream_restored", restored=restored, copied=copied)
        self._last_id = "0-0"  # read it all again: what is new to us is applied, the rest not
        return True

    async def follow(self, on_event: OnEvent, retained: Retained) -> None:
        backoff = 0.1
        while True:
            try:
                await self._check(retained)  # at start, and after a lost connection
                await self._catch_up(on_event)
                self._last_ok = time.monotonic()
                self.client.report(None)
                if not self.connected:
                    log.info("revocation_stream_following", key=self.key, last_id=self._last_id)
                self.connected, backoff = True, 0.1
                while True:
                    reply = cast(
                        list[tuple[str, Entries]],
                        await self.client.redis.xread(
                            {self.key: self._last_id}, block=BLOCK_MS, count=PAGE
                        ),
                    )
                    for _, entries in reply:
                        self._deliver(entries, on_event)
                    if await self._check(retained):
                        await self._catch_up(on_event)
                    self._last_ok = time.monotonic()
            except REDIS_ERRORS as error:
                if cancelling():
                    raise asyncio.CancelledError from error
                if self._closing:
                    return  # the app is shutting down and closed our client
                if self.connected:
                    log.warning("revocation_stream_unreachable", reason=str(error))
                self.client.report(error)  # logged when it starts, then every 30 s
                self.connected = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    async def trim(self, before: RevocationEvent | None, cutoff_ms: int) -> None:
        """Drop entries older than the retention, but never an active suspension's."""
        limit = cutoff_ms
        if before is not None:
            limit = min(limit, stream_id_key(before.id)[0])
        try:
            async with self._writer:
                await self.client.redis.xtrim(self.key, minid=str(limit), approximate=False)
        except REDIS_ERRORS as error:
            log.warning("revocation_trim_failed", reason=str(error))

    async def close(self) -> None:
        self._closing = True
        await self.client.aclose()
