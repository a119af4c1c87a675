"""GET /v1/events: each revocation event, as SSE with `id:` lines, to the callers it concerns.

An event naming a user goes to that user only; a tenant event goes to every caller whose
token has that tenant. With `Last-Event-ID`, everything after it that concerns the caller is
replayed (within the retained window); without it, only events newer than the token's `iat`:
an app starting with a freshly issued token must not wipe a tenant it was granted again since,
nor refresh its token in a loop over a role change it already has. A comment heartbeat keeps
the stream alive through proxies. A client too slow to keep up is disconnected (it reconnects
with Last-Event-ID and misses nothing).

The replay ends with a comment, `: replayed N` (N events), written before any live event, even
when nothing was replayed: a client that folds replayed events before acting (so that a
replayed suspension and the reinstatement after it end nothing) knows where the replay ends
without guessing from timing. SSE parsers ignore comments, so other clients see no change.

A feed is an open stream like a shape request (gateway/streams.py): the event that ends its
caller's access stops it, as does its token's expiry and shutdown. Stopped, it first writes
what is queued to it, the ending event included (it is queued before the stop is made), then
ends cleanly. A replayed event ends nothing: only the access the caller has now decides.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from aiohttp import hdrs, web

from gateway.auth.identity import Identity
from gateway.errors import Code, Refusal
from gateway.revocation.events import RevocationEvent, stream_id_key
from gateway.streams import OpenStream

HEARTBEAT_SECONDS: Final = 15.0
QUEUE_LIMIT: Final = 256


def concerns(event: RevocationEvent, identity: Identity) -> bool:
    if event.is_tenant_event:
        return event.tenant == identity.tenant or event.tenant in identity.memberships
    return event.user == identity.user


def encode(event: RevocationEvent) -> bytes:
    data = json.dumps(event.as_json(), separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.type.value}\ndata: {data}\n\n".encode()


@dataclass(eq=False)
class Subscriber:
    identity: Identity
    queue: asyncio.Queue[RevocationEvent | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_LIMIT)
    )


class FeedHub:
    """Fans applied events out to the connected feeds they concern."""

    def __init__(self, heartbeat: float = HEARTBEAT_SECONDS) -> None:
        self.heartbeat = heartbeat
        self.subscribers: set[Subscriber] = set()

    def publish(self, event: RevocationEvent) -> None:
        for subscriber in list(self.subscribers):
            if concerns(event, subscriber.identity):
                try:
                    subscriber.queue.put_nowait(event)
                except asyncio.QueueFull:
                    self.subscribers.discard(subscriber)
                    subscriber.queue.get_nowait()
                    subscriber.queue.put_nowait(None)  # tell it to disconnect


def last_event_id(request: web.Request) -> str | None:
    """The `Last-Event-ID` header (or `last_event_id` query parameter, for EventSource
    polyfills that cannot set headers); a malformed one is refused, not silently ignored."""
    values = request.headers.getall("Last-Event-ID", []) + request.query.getall("last_event_id", [])
    if not values:
        return None
    if len(values) > 1:
        raise Refusal(Code.DUPLICATE_PARAMETER, "send Last-Event-ID once")
    try:
        stream_id_key(values[0])
    except ValueError:
        raise Refusal(
            Code.INVALID_PARAMETER,
            "Last-Event-ID must be the id of an event this feed sent, like 1700000000000-0",
        ) from None
    return values[0]


def replay(
    retained: list[RevocationEvent], identity: Identity, since: str | None
) -> list[RevocationEvent]:
    """What a connecting feed replays: after `since`, else what is newer than the token."""
    if since is not None:
        key = stream_id_key(since)
        return [e for e in retained if stream_id_key(e.id) > key and concerns(e, identity)]
    return [e for e in retained if e.at > identity.issued_at and concerns(e, identity)]


def replay_end(count: int) -> bytes:
    """The comment that ends the replay of a connection: what follows it is live."""
    return f": replayed {count}\n\n".encode()


class FeedResponse(web.StreamResponse):
    """The event stream, counting the body bytes it writes (the audit line's `bytes`)."""

    def __init__(self, *, headers: dict[str, str]) -> None:
        super().__init__(headers=headers)
        self.sent = 0

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += len(data)
        await super().write(data)


def feed_response() -> FeedResponse:
    return FeedResponse(
        headers={
            hdrs.CONTENT_TYPE: "text/event-stream",
            hdrs.CACHE_CONTROL: "no-store",
            "X-Accel-Buffering": "no",  # nginx: never buffer this stream
        }
    )


async def stream_events(
    request: web.Request,
    response: web.StreamResponse,
    stream: OpenStream,
    hub: FeedHub,
    history: Callable[[], list[RevocationEvent]],
) -> Refusal | None:
    """Subscribe, take the history to replay (no await between: no gap), then stream the
    replay, its end (`replay_end`) and live events into `response`; an event in both is sent
    once. Returns the reason the feed was stopped (after writing what was queued and ending
    the stream), or None when it ended itself."""
    subscriber = Subscriber(stream.identity)
    hub.subscribers.add(subscriber)
    missed = history()
    sent: set[str] = set()

    async def send(event: RevocationEvent) -> None:
        if event.id not in sent:
            sent.add(event.id)
            await response.write(encode(event))

    try:
        try:
            await response.prepare(request)
            await response.write(b": connected\n\n")
            for event in missed:
                await send(event)
            await response.write(replay_end(len(missed)))
            while True:
                try:
                    async with asyncio.timeout(hub.heartbeat):
                        item = await subscriber.queue.get()
                except TimeoutError:
                    await response.write(b": heartbeat\n\n")
                    continue
                if item is None:
                    break
                await send(item)
        except asyncio.CancelledError:
            if stream.reason is None or not response.prepared:
                raise  # the client went away; or stopped before the headers: refused instead
            reason = stream.stopped()
            hub.subscribers.discard(subscriber)
            while not subscriber.queue.empty():
                queued = subscriber.queue.get_nowait()
                if queued is not None:
                    await send(queued)
            await response.write_eof()
            return reason
        await response.write_eof()
        return None
    finally:
        hub.subscribers.discard(subscriber)
