"""GET /v1/events: each revocation event, as SSE with `id:` lines, to the callers it concerns
(what each caller gets, encoded; web/sse.py writes it to the connection).

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
from dataclasses import dataclass, field
from typing import Final

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
