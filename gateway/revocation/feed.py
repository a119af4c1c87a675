"""GET /v1/events: each revocation event, as SSE with `id:` lines, to the callers it concerns.

An event naming a user goes to that user only; a tenant event goes to every caller whose
token has that tenant. `Last-Event-ID` replays what was missed within the retained window; a
comment heartbeat keeps the stream alive through proxies. A client too slow to keep up is
disconnected (it reconnects with Last-Event-ID and misses nothing).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from aiohttp import hdrs, web

from gateway.auth.identity import Identity
from gateway.revocation.events import RevocationEvent, stream_id_key

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
    value = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    if value is None:
        return None
    try:
        stream_id_key(value)
    except ValueError:
        return None
    return value


async def stream_events(
    request: web.Request,
    identity: Identity,
    hub: FeedHub,
    history: Callable[[], list[RevocationEvent]],
) -> web.StreamResponse:
    """Subscribe, take the history to replay (no await between: no gap), then stream live;
    an event in both is sent once."""
    subscriber = Subscriber(identity)
    hub.subscribers.add(subscriber)
    missed = history()
    try:
        response = web.StreamResponse(
            headers={
                hdrs.CONTENT_TYPE: "text/event-stream",
                hdrs.CACHE_CONTROL: "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        await response.write(b": connected\n\n")
        sent: set[str] = set()
        for event in missed:
            if concerns(event, identity):
                await response.write(encode(event))
                sent.add(event.id)
        while True:
            try:
                async with asyncio.timeout(hub.heartbeat):
                    item = await subscriber.queue.get()
            except TimeoutError:
                await response.write(b": heartbeat\n\n")
                continue
            if item is None:
                break
            if item.id not in sent:
                await response.write(encode(item))
                sent.add(item.id)
        await response.write_eof()
        return response
    finally:
        hub.subscribers.discard(subscriber)
