"""Open requests, so they can be ended on purpose: at shutdown (live ones, so clients reconnect
to another replica), on revocation (every request of the revoked principal) and when the token
that opened them expires.

Every admitted request is tracked from admission to its answer (web/middleware/admission.py): a
shape request, a subset POST still reading its body, an event feed. Stopping cancels the request's
task with a reason; whoever holds the request sees its own reason (`OpenStream.stopped`), withdraws
the cancellation, and answers with it (before headers) or ends the stream cleanly (after). The feed
delivers the event that ended its caller's access before it ends: the event is queued to it before
the stop (revocation/enforcer.py), and a stopped feed writes what is queued first
(revocation/feed.py).

Streams are indexed by user and by (active) tenant, so a revocation looks only at the streams
of the principal it names: its cost grows with the streams it affects, not with all those open.

Expiry is one timer wheel: streams are bucketed by the second their token ends (`exp` +
JWT_LEEWAY), and one loop timer is armed for the earliest second due. Tracking a request costs
a set entry and dict operations, never a task or a timer per stream: a second is queued once
(a heap of ints) and stays queued when its bucket empties, so a client polling with one token
re-arms nothing; when the timer fires it stops the streams of every second past, skips the
emptied seconds and arms itself for the next second that still has streams.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final

from gateway.auth.identity import Identity
from gateway.errors import Code, Refusal

EXPIRED: Final = Refusal(Code.TOKEN_EXPIRED, "token has expired; refresh it and retry")


@dataclass(eq=False, slots=True)
class OpenStream:
    identity: Identity
    live: bool
    task: asyncio.Task[object] | None
    reason: Refusal | None = field(default=None)

    def stop(self, reason: Refusal) -> None:
        if self.reason is None and self.task is not None:
            self.reason = reason
            self.task.cancel()

    def stopped(self) -> Refusal | None:
        """On CancelledError: the reason this stream was stopped, its cancellation withdrawn
        (the holder answers with it), or None when the task is cancelled for another reason
        (the client left, the server is stopping), which must propagate. Withdrawn once: a
        cancellation after that is never the stop's."""
        task = self.task
        if self.reason is None or task is None:
            return None
        self.task = None
        task.uncancel()
        return self.reason


class OpenStreams:
    def __init__(self, leeway: int = 0) -> None:
        self.leeway = leeway  # JWT_LEEWAY: a token is accepted this long after its `exp`
        self._open: set[OpenStream] = set()
        self._by_user: dict[str, set[OpenStream]] = {}
        self._by_tenant: dict[str, set[OpenStream]] = {}
        self._expiring: dict[int, set[OpenStream]] = {}  # exp + leeway -> its open streams
        self._due: list[int] = []  # heap of the seconds queued (possibly emptied since)
        self._queued: set[int] = set()  # the same seconds, each queued once
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0  # the second the timer is armed for

    def __len__(self) -> int:
        return len(self._open)

    @property
    def expiring(self) -> int:
        """Seconds in which some open stream's token ends (each a bucket of streams)."""
        return len(self._expiring)

    @property
    def timers(self) -> int:
        """Loop timers armed for expiry: at most one, whatever is open."""
        return 0 if self._timer is None else 1

    def _ends(self, identity: Identity) -> int | None:
        """The second `identity`'s token stops being accepted; None for an identity that no
        token carried (0: `explain`, `check`), which has nothing to expire."""
        return identity.expires_at + self.leeway if identity.expires_at else None

    @contextmanager
    def track(self, identity: Identity, live: bool) -> Iterator[OpenStream]:
        """Track the current task's request until the block ends."""
        stream = OpenStream(identity, live, asyncio.current_task())
        self._open.add(stream)
        indexes = ((self._by_user, identity.user), (self._by_tenant, identity.tenant))
        for index, key in indexes:
            index.setdefault(key, set()).add(stream)
        ends = self._ends(identity)
        if ends is not None:
            bucket = self._expiring.get(ends)
            if bucket is None:
                bucket = self._expiring[ends] = set()
                if ends not in self._queued:
                    self._queued.add(ends)
                    heapq.heappush(self._due, ends)
                    if self._timer is None or ends < self._timer_at:
                        self._arm(ends)
            bucket.add(stream)
        try:
            yield stream
        finally:
            self._open.discard(stream)
            for index, key in indexes:
                members = index.get(key)
                if members is not None:
                    members.discard(stream)
                    if not members:
                        del index[key]
            if ends is not None:
                self._forget(ends, stream)

    def _arm(self, at: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        delay = max(at - time.time(), 0.0)
        self._timer = asyncio.get_running_loop().call_later(delay, self._expire)
        self._timer_at = at

    def _forget(self, ends: int, stream: OpenStream) -> None:
        bucket = self._expiring.get(ends)
        if bucket is not None:
            bucket.discard(stream)
            if not bucket:
                del self._expiring[ends]  # its second stays queued: the timer skips it

    def _expire(self) -> None:
        """Stop the streams of every second past as `token_expired`; arm for the next second
        that still has streams (if the loop's clock ran ahead of the wall clock, the same)."""
        self._timer = None
        now = time.time()
        due, queued = self._due, self._queued
        while due and (due[0] <= now or due[0] not in self._expiring):
            ends = heapq.heappop(due)
            queued.discard(ends)
            for stream in self._expiring.pop(ends, ()):
                stream.stop(EXPIRED)
        if due:
            self._arm(due[0])

    def of_user(self, user: str) -> list[OpenStream]:
        """The open streams (shapes and feeds) of `user`, in any tenant."""
        return list(self._by_user.get(user, ()))

    def of_tenant(self, tenant: str) -> list[OpenStream]:
        """The open streams (shapes and feeds) whose active tenant is `tenant`."""
        return list(self._by_tenant.get(tenant, ()))

    def stop_where(self, matches: Callable[[OpenStream], bool], reason: Refusal) -> int:
        """Stop every open stream for which `matches` holds; returns how many."""
        return self.stop_each(lambda s: reason if matches(s) else None)

    def stop_each(
        self,
        decide: Callable[[OpenStream], Refusal | None],
        among: Iterable[OpenStream] | None = None,
    ) -> int:
        """Stop each stream (of `among`, else every open one) for which `decide` gives a
        reason; returns how many."""
        stopped = 0
        for stream in list(self._open if among is None else among):
            reason = decide(stream) if stream.reason is None else None
            if reason is not None:
                stream.stop(reason)
                stopped += 1
        return stopped
