"""Open streams, indexed so a revocation looks only at the streams of the principal it names:
the user's (any tenant) or the tenant's, feeds included, and nothing left behind; and ended
when their token expires, through one timer per expiring second."""

from __future__ import annotations

import asyncio
import contextlib
import time

from gateway.errors import Code, Refusal
from gateway.metrics import Metrics
from gateway.revocation.enforcer import Revocations
from gateway.revocation.events import EventType, RevocationEvent
from gateway.revocation.store import MemoryStore
from gateway.streams import OpenStreams
from tests.factories import make_identity

NOW = int(time.time())


def event(kind: EventType, n: int, **who: str) -> RevocationEvent:
    return RevocationEvent(id=f"{NOW * 1000}-{n}", type=kind, at=NOW, **who)


async def hold(streams: OpenStreams, ready: asyncio.Event, **who: str) -> None:
    with streams.track(make_identity(issued_at=NOW - 10, **who), live=True):
        ready.set()
        await asyncio.Event().wait()


async def test_a_revocation_looks_only_at_the_streams_it_concerns() -> None:
    streams = OpenStreams()
    revocations = Revocations(MemoryStore(), 3600, streams, Metrics(), fail_closed=True)
    async with asyncio.TaskGroup() as group:
        held = []
        for user, tenant in [("alice", "acme"), ("alice", "globex"), ("bob", "acme")]:
            ready = asyncio.Event()
            held.append(group.create_task(hold(streams, ready, user=user, tenant=tenant)))
            await ready.wait()
        for n in range(10_000):  # others, in another tenant
            ready = asyncio.Event()
            held.append(group.create_task(hold(streams, ready, user=f"u{n}", tenant="initech")))
            await ready.wait()

        session = event(EventType.SESSION_REVOKED, 1, user="alice")
        suspension = event(EventType.TENANT_SUSPENDED, 2, tenant="acme")
        assert len(revocations.affected(session)) == 2  # alice's streams in both tenants
        assert len(revocations.affected(suspension)) == 2  # acme's: alice's and bob's
        assert revocations.affected(event(EventType.TENANT_REINSTATED, 3, tenant="acme")) == []

        revocations.on_event(session)
        await asyncio.sleep(0)
        assert [t.done() for t in held[:3]] == [True, True, False]
        for task in held:
            task.cancel()
    assert len(streams) == 0
    assert streams.of_user("alice") == streams.of_tenant("acme") == []


async def test_a_stream_is_stopped_as_token_expired_once_exp_and_the_leeway_have_passed() -> None:
    streams = OpenStreams(leeway=1)
    expires = int(time.time()) + 1
    reasons: list[Refusal | None] = []

    async def held() -> None:
        with streams.track(make_identity(expires_at=expires), live=True) as stream:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                reasons.append(stream.stopped())

    started = time.time()
    await asyncio.wait_for(held(), timeout=4)
    ended = time.time()
    assert [r.code if r else None for r in reasons] == [Code.TOKEN_EXPIRED]
    assert expires + 1 <= ended < expires + 1.5, (started, ended)
    assert len(streams) == streams.timers == 0


async def test_streams_are_bucketed_by_the_second_their_token_ends_under_one_timer() -> None:
    streams = OpenStreams(leeway=30)
    later = int(time.time()) + 600
    with contextlib.ExitStack() as held:
        for n in range(1000):  # ~3 streams per token, 334 tokens ending in the same second
            held.enter_context(
                streams.track(make_identity(user=f"u{n // 3}", expires_at=later), live=True)
            )
        for n in range(1, 4):  # and three tokens ending in three other seconds
            held.enter_context(streams.track(make_identity(expires_at=later + n), live=True))
        assert (len(streams), streams.expiring, streams.timers) == (1003, 4, 1)
    assert (len(streams), streams.expiring) == (0, 0)


async def test_the_timer_of_seconds_whose_streams_all_ended_disarms_when_it_fires() -> None:
    streams = OpenStreams(leeway=1)
    soon = int(time.time())
    for _ in range(100):  # a client polling again and again with one token
        with streams.track(make_identity(expires_at=soon), live=False):
            assert (streams.expiring, streams.timers) == (1, 1)
    assert (streams.expiring, streams.timers) == (0, 1)  # armed once, left armed
    async with asyncio.timeout(3):
        while streams.timers:  # noqa: ASYNC110 - the wheel's own timer, observed
            await asyncio.sleep(0.05)
    with streams.track(make_identity(), live=False):  # no token behind it (explain, check)
        assert (streams.expiring, streams.timers) == (0, 0)
