"""The one-process store (no REDIS_URL) keeps the publish contract: an event_id publishes once."""

from __future__ import annotations

import asyncio
import contextlib

from gateway.revocation.events import EventRequest, EventType, RevocationEvent
from gateway.revocation.store import MemoryStore


async def test_publishing_an_event_id_again_returns_the_first_event_and_adds_nothing() -> None:
    store = MemoryStore()
    request = EventRequest(EventType.SESSION_REVOKED, user="alice", event_id="e-1")
    first = await store.publish(request)
    assert await store.publish(request) == first
    other = await store.publish(EventRequest(EventType.SESSION_REVOKED, user="alice"))
    assert other.id != first.id
    assert other.event_id not in (None, "e-1")
    delivered: list[RevocationEvent] = []
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(store.follow(delivered.append, list), 0.05)
    assert [e.id for e in delivered] == [first.id, other.id]
