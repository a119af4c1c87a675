"""Publishing a revocation event to the Redis stream, acknowledged only once it is on the master
that holds the stream and, when that master has replicas, on one of them too.

One connection, for one publish (or trim) at a time, to the node redis/node.py locates:
1. `ROLE`: a master (else the master is elsewhere now), and how many replicas it has;
2. the PUBLISH script: the entry plus its event_id's key, or, for an event_id published
   before, nothing new and the entry it names: a publish repeated with its event_id adds
   nothing, so repeating one whose outcome is unknown is safe;
3. `WAIT 1 <GATEWAY_REVOCATION_WAIT_MS>` on the same connection, when the master has replicas
   (WAIT counts this connection's writes: the script wrote at least the key's expiry, after
   the entry, and Redis replicates in order);
4. with Sentinel, a majority of the sentinels, asked after the write, still name that master. A
   master that hung while Sentinel failed over calls itself master for ten more seconds; what
   it takes meanwhile is lost when it is demoted, and no gateway reads it.

What the caller is told:
- the event: acknowledged;
- `NotReplicatedError`: on the master, but no replica confirmed it in time;
- `OutcomeUnknownError`: the script was sent and its answer lost (the connection died, the
  server hung), or it reached a server that is no longer the master: it may have been applied;
  publishing it again with the same event_id is safe;
- any other RedisError: it was not applied (nothing was sent, or Redis refused it).
A write taken by a deposed master, or refused with MOVED or READONLY, goes once more, at once,
to the master named now, with the same event_id; so does a publish still waiting on a master
that hangs when the sentinels name another (it is not held for the socket timeout).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import AskError, MovedError, ReadOnlyError, RedisError, ResponseError

from gateway.redis.client import REDIS_ERRORS
from gateway.redis.keys import revocation_event, revocation_stream
from gateway.redis.node import KeyNode, Node, NodeChangedError
from gateway.revocation.events import EventRequest, RevocationEvent, event_from_entry
from gateway.tasks import first_of

ANSWER_MARGIN: Final = 2.0  # seconds a Redis answer may take beyond what it waits for

# KEYS: the stream, the event_id's key. ARGV: the key's ttl (ms), then the entry's fields and
# values. Returns {id} for a new entry, or {id, fields} of the entry the event_id names.
PUBLISH: Final = """
local known = redis.call('GET', KEYS[2])
if known then
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
  local entry = redis.call('XRANGE', KEYS[1], known, known)
  if #entry == 1 then return {known, entry[1][2]} end
  return {known}
end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
redis.call('SET', KEYS[2], id, 'PX', ARGV[1])
return {id}
"""


def socket_timeout(wait_ms: int) -> float:
    """Seconds the publisher's connection waits for an answer: longer than a WAIT."""
    return wait_ms / 1000 + ANSWER_MARGIN


class NotReplicatedError(RedisError):
    """The entry is on the Redis master, but no replica confirmed it within the wait."""

    def __init__(self, event: RevocationEvent, wait_ms: int) -> None:
        self.event = event
        super().__init__(
            f"event {event.id} reached the Redis master but no replica confirmed it within "
            f"{wait_ms} ms: it is enforced, but a failover now could lose it; publish it again "
            f"with the same event_id ({event.event_id}): that adds nothing"
        )


class OutcomeUnknownError(RedisError):
    """The event may or may not have been applied; publishing it again with its event_id is
    safe."""

    def __init__(self, event_id: str, reason: str) -> None:
        self.event_id = event_id
        self.reason = reason
        super().__init__(
            f"the event may have been applied ({reason}); publishing it again with the same "
            f"event_id ({event_id}) is safe"
        )


class _ElsewhereError(RedisError):
    """The master holding the stream is another node now; `sent` if this one took the write."""

    def __init__(self, reason: str, sent: bool) -> None:
        self.sent = sent
        super().__init__(reason)


def _pairs(flat: Sequence[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


class Publisher:
    """Writes to the revocation stream (publish, trim), one at a time on one connection."""

    def __init__(self, nodes: KeyNode, prefix: str, wait_ms: int, retention: int) -> None:
        self.nodes = nodes
        self.prefix = prefix
        self.key = revocation_stream(prefix)
        self.wait_ms = wait_ms
        self.ttl_ms = retention * 1000
        self._lock = asyncio.Lock()
        self._client: aioredis.Redis | None = None
        self._node: Node | None = None
        self._sent = False  # whether the attempt in progress sent its write

    async def publish(self, request: EventRequest) -> RevocationEvent:
        """Append `request` (named with an event_id if it has none); see the module docstring
        for what is raised."""
        request = request.named()
        assert request.event_id is not None
        async with self._lock:
            sent = False
            failure: RedisError | None = None
            for _ in range(2):
                try:
                    return await self._attempt(request)
                except _ElsewhereError as elsewhere:
                    sent, failure = sent or elsewhere.sent, elsewhere
                except (NotReplicatedError, OutcomeUnknownError):
                    raise
                except REDIS_ERRORS as error:
                    if not sent:
                        raise
                    failure = RedisError(str(error))
                    break
            assert failure is not None
            if sent:
                raise OutcomeUnknownError(request.event_id, str(failure))
            raise failure

    async def _attempt(self, request: EventRequest) -> RevocationEvent:
        """One publish to the node located now, given up as soon as the sentinels name another
        (a master that hangs holds no publish for its socket timeout)."""
        node = await self.nodes.locate()
        self._sent = False
        try:
            return await first_of(
                self.nodes.watch(node, strict=False), self._attempt_on(node, request)
            )
        except NodeChangedError as moved:
            await self._drop()
            raise _ElsewhereError(str(moved), sent=self._sent) from moved

    async def _attempt_on(self, node: Node, request: EventRequest) -> RevocationEvent:
        assert request.event_id is not None
        client, role = await self._master(node)
        event = await self._append(client, request)
        replicas, confirmed = len(role[2]), 0
        if replicas and self.wait_ms:
            try:
                confirmed = int(await client.wait(1, self.wait_ms))
            except REDIS_ERRORS as error:
                await self._drop()
                reason = f"no answer to WAIT: {error}"
                raise OutcomeUnknownError(request.event_id, reason) from error
        try:
            master = await self.nodes.confirm(node, since=time.monotonic())
        except REDIS_ERRORS as error:
            raise OutcomeUnknownError(request.event_id, str(error)) from error
        if not master:
            await self._drop()
            raise _ElsewhereError(f"{node} is no longer the master Sentinel names", sent=True)
        if replicas and self.wait_ms and confirmed < 1:
            raise NotReplicatedError(event, self.wait_ms)
        return event

    async def _master(self, node: Node) -> tuple[aioredis.Redis, list[Any]]:
        """A connection to `node` and its ROLE, which must be master. Nothing is written yet,
        so a kept connection closed while idle (by the server, a proxy) is opened anew."""
        for attempt in (1, 2):
            reused = self._client is not None and self._node == node
            client = await self._connection(node)
            try:
                role = await client.role()
                break
            except REDIS_ERRORS:
                await self._drop()
                if not reused or attempt == 2:
                    raise
        if str(role[0]) != "master":
            await self._drop()
            self.nodes.forget()
            raise _ElsewhereError(f"{node} is a {role[0]} now, not the master", sent=False)
        return client, role

    async def _append(self, client: aioredis.Redis, request: EventRequest) -> RevocationEvent:
        """Run the PUBLISH script: the event's entry, new or the one its event_id names."""
        assert request.event_id is not None
        fields = request.fields()
        args: list[Any] = [self.ttl_ms, *(part for pair in fields.items() for part in pair)]
        event_key = revocation_event(self.prefix, request.event_id)
        self._sent = True  # from here on, it may have been applied
        try:
            reply = await client.eval(PUBLISH, 2, self.key, event_key, *args)
        except (AskError, ReadOnlyError) as error:  # refused: applied nowhere
            if isinstance(error, MovedError):
                self.nodes.redirected(error)
            else:
                self.nodes.forget()
            raise _ElsewhereError(str(error), sent=False) from error
        except ResponseError:
            raise  # refused (NOREPLICAS, CLUSTERDOWN, OOM, ...): applied nowhere
        except REDIS_ERRORS as error:
            await self._drop()
            raise OutcomeUnknownError(request.event_id, f"no answer from Redis: {error}") from error
        entry = _pairs(reply[1]) if len(reply) > 1 and reply[1] else fields
        return event_from_entry(str(reply[0]), entry)

    async def _connection(self, node: Node) -> aioredis.Redis:
        """The connection to `node`, opened now if need be: a failure here sent nothing."""
        if self._client is not None and self._node == node:
            return self._client
        await self._drop()
        client = self.nodes.connect(node, socket_timeout(self.wait_ms))
        try:
            await client.initialize()
        except BaseException as error:  # a failure, or a cancellation (the master moved)
            await client.aclose()
            if isinstance(error, REDIS_ERRORS):
                self.nodes.forget()
            raise
        self._client, self._node = client, node
        return client

    async def _drop(self) -> None:
        """Close the connection (its state is unknown after an error)."""
        client, self._client, self._node = self._client, None, None
        if client is not None:
            await client.aclose()

    async def trim(self, min_id: int) -> None:
        """Drop the entries with an id below `min_id` (ms); raises RedisError."""
        async with self._lock:
            client = await self._connection(await self.nodes.locate())
            try:
                await client.xtrim(self.key, minid=str(min_id), approximate=False)
            except REDIS_ERRORS:
                await self._drop()
                raise

    async def close(self) -> None:
        async with self._lock:
            await self._drop()
