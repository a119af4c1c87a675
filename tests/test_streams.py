"""Open streams, indexed so a revocation looks only at the streams of the principal it names:
the user's (any tenant) or the tenant's, never an event feed, and nothing left behind."""

from __future__ import annotations

import asyncio
import time

from gateway.metrics import Metrics
from gateway.revocation.enforcer import Revocations
from gateway.revocation.events import EventType, RevocationEvent
from gateway.revocation.store import MemoryStore
from gateway.streams import OpenStreams
from tests.factories import make_identity

NOW = int(time.time())


def event(kind: EventType, n: int, **who: str) -> RevocationEvent:
    return RevocationEvent(id=f"{NOW * 1000}-{n}", type=kind, at=NOW, **who)


async def hold(streams: OpenStreams, ready: asyncio.Event, *, feed: bool = False,
               **who: str) -> None:  # fmt: skip
    with streams.track(make_identity(issued_at=NOW - 10, **who), live=True, feed=feed):
        ready.set()
        await asyncio.Event().wait()


async def test_a_revocation_looks_only_at_the_streams_it_concerns() -> None:
    streams = OpenStreams()
    revocations = Revocations(MemoryStore(), 3600, streams, Metrics(), fail_closed=True)
    async with asyncio.TaskGroup() as group:
        held = []
        for user, tenant, feed in [("alice", "acme", False), ("alice", "globex", False),
                                   ("alice", "acme", True), ("bob", "acme", False)]:  # fmt: skip
            ready = asyncio.Event()
            held.append(
                group.create_task(hold(streams, ready, feed=feed, user=user, tenant=tenant))
            )
            await ready.wait()
        for n in range(10_000):  # others, in another tenant
            ready = asyncio.Event()
            held.append(group.create_task(hold(streams, ready, user=f"u{n}", tenant="initech")))
            await ready.wait()

        session = event(EventType.SESSION_REVOKED, 1, user="alice")
        suspension = event(EventType.TENANT_SUSPENDED, 2, tenant="acme")
        assert len(revocations.affected(session)) == 2  # alice's shapes in both tenants
        assert len(revocations.affected(suspension)) == 2  # acme's shapes: alice's and bob's
        assert revocations.affected(event(EventType.TENANT_REINSTATED, 3, tenant="acme")) == []

        revocations.on_event(session)
        await asyncio.sleep(0)
        assert [t.done() for t in held[:4]] == [True, True, False, False]  # the feed stays
        for task in held:
            task.cancel()
    assert len(streams) == 0
    assert streams.of_user("alice") == streams.of_tenant("acme") == []
