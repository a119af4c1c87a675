"""Open shape requests, so they can be ended on purpose: at shutdown (live ones, so clients
reconnect to another replica) and on revocation (every stream of the revoked principal).

Stopping cancels the request's task with a reason; the proxy sees its own reason, un-cancels,
and answers with it (before headers) or ends the stream cleanly (after).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
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

    def __len__(self) -> int:
        return len(self._open)

    @contextmanager
    def track(self, identity: Identity, live: bool, *, feed: bool = False) -> Iterator[OpenStream]:
        stream = OpenStream(identity, live, asyncio.current_task(), feed=feed)
        self._open.add(stream)
        try:
            yield stream
        finally:
            self._open.discard(stream)

    def stop_where(self, matches: Callable[[OpenStream], bool], reason: Refusal) -> int:
        """Stop every open stream for which `matches` holds; returns how many."""
        return self.stop_each(lambda s: reason if matches(s) else None)

    def stop_each(self, decide: Callable[[OpenStream], Refusal | None]) -> int:
        """Stop each open stream for which `decide` gives a reason; returns how many."""
        stopped = 0
        for stream in list(self._open):
            reason = decide(stream) if stream.reason is None else None
            if reason is not None:
                stream.stop(reason)
                stopped += 1
        return stopped
