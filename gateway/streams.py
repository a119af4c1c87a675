"""Open shape requests, so they can be ended on purpose: at shutdown (live ones, so clients
reconnect to another replica) and on revocation (every stream of the revoked principal).

Stopping cancels the request's task with a reason; the proxy sees its own reason, un-cancels,
and answers with it (before headers) or ends the stream cleanly (after).

Shape streams are indexed by user and by tenant, so a revocation looks only at the streams of
the principal it names: its cost grows with the streams it affects, not with all those open.
Event feeds (/v1/events) are in neither index: a revocation never ends one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from gateway.auth.identity import Identity
from gateway.errors import Refusal


@dataclass(eq=False, slots=True)
class OpenStream:
    identity: Identity
    live: bool
    task: asyncio.Task[object] | None
    feed: bool = False  # a /v1/events stream: ended at shutdown, never by a revocation
    reason: Refusal | None = field(default=None)

    def stop(self, reason: Refusal) -> None:
        if self.reason is None and self.task is not None:
            self.reason = reason
            self.task.cancel()


class OpenStreams:
    def __init__(self) -> None:
        self._open: set[OpenStream] = set()
        self._by_user: dict[str, set[OpenStream]] = {}
        self._by_tenant: dict[str, set[OpenStream]] = {}

    def __len__(self) -> int:
        return len(self._open)

    @contextmanager
    def track(self, identity: Identity, live: bool, *, feed: bool = False) -> Iterator[OpenStream]:
        stream = OpenStream(identity, live, asyncio.current_task(), feed=feed)
        self._open.add(stream)
        indexes = () if feed else (
            (self._by_user, identity.user), (self._by_tenant, identity.tenant)
        )  # fmt: skip
        for index, key in indexes:
            index.setdefault(key, set()).add(stream)
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

    def of_user(self, user: str) -> list[OpenStream]:
        """The open shape streams (never feeds) of `user`, in any tenant."""
        return list(self._by_user.get(user, ()))

    def of_tenant(self, tenant: str) -> list[OpenStream]:
        """The open shape streams (never feeds) in `tenant`."""
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
