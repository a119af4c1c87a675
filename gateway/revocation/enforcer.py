"""Applying revocation events on this replica: update the view, tell the feeds, cut the
affected open requests at once (looking only at the streams of the user or tenant the event
names: shape requests and feeds alike), measure the lag; and answer the per-request check.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable, Iterable
from typing import Final

import structlog

from gateway.auth.identity import Identity
from gateway.errors import Code, Refusal
from gateway.metrics import Metrics
from gateway.revocation.events import EventRequest, EventType, RevocationEvent, stream_id_key
from gateway.revocation.state import RevocationState
from gateway.revocation.store import RevocationStore
from gateway.streams import OpenStream, OpenStreams

log = structlog.get_logger(__name__)
PRUNE_SECONDS: Final = 60.0
STALE: Final = Refusal(
    Code.REVOCATION_STATE_STALE,
    "the gateway cannot confirm revocations are current; retry shortly",
)


class Revocations:
    def __init__(
        self,
        store: RevocationStore,
        retention: int,
        streams: OpenStreams,
        metrics: Metrics,
        fail_closed: bool,
    ) -> None:
        self.store = store
        self.state = RevocationState(retention=retention)
        self.streams = streams
        self.metrics = metrics
        self.fail_closed = fail_closed
        self.log: list[RevocationEvent] = []  # retained events, ordered by id: replay + restore
        self._keys: list[tuple[int, int]] = []
        self.listeners: list[Callable[[RevocationEvent], None]] = []
        self._warned_stale = False

    def affected(self, event: RevocationEvent) -> list[OpenStream]:
        """The open streams `event` may end: its user's, or its tenant's."""
        if event.type is EventType.TENANT_SUSPENDED and event.tenant:
            return self.streams.of_tenant(event.tenant)
        if event.type is not EventType.TENANT_REINSTATED and event.user:
            return self.streams.of_user(event.user)
        return []

    def on_event(self, event: RevocationEvent) -> None:
        if not event.is_tenant_event and event.at < time.time() - self.state.retention:
            return  # expired, and no longer remembered: a stream read again after a restore
        if not self.state.apply(event):
            return
        key = stream_id_key(event.id)
        at = bisect.bisect(self._keys, key)
        self._keys.insert(at, key)
        self.log.insert(at, event)
        # The feeds first: a feed this event stops writes what is queued to it before it ends,
        # so the event that ends its caller's access must be queued before the stop.
        for listener in self.listeners:
            listener(event)
        cut = self.streams.stop_each(lambda s: self.state.check(s.identity), self.affected(event))
        lag = max(time.time() - key[0] / 1000, 0.0)
        self.metrics.revocation_lag.observe(lag)
        self.metrics.revocations_applied.labels(event.type.value).inc()
        self.metrics.streams_cut.inc(cut)
        log.info(
            "revocation_applied",
            id=event.id,
            type=event.type.value,
            user=event.user,
            tenant=event.tenant,
            streams_cut=cut,
            lag_ms=round(lag * 1000, 1),
        )

    def fresh(self) -> bool:
        fresh = self.store.fresh(time.monotonic())
        self.metrics.revocation_fresh.set(1 if fresh else 0)
        return fresh

    def check(self, identity: Identity) -> Refusal | None:
        """The hot-path check: a dict lookup, plus the fail mode when the view may be stale."""
        if not self.store.fresh(time.monotonic()):
            if self.fail_closed:
                return STALE
            if not self._warned_stale:
                log.warning("revocation_state_stale_serving_open")
                self._warned_stale = True
        else:
            self._warned_stale = False
        return self.state.check(identity)

    def after(self, event_id: str | None) -> list[RevocationEvent]:
        """Retained events after `event_id` (all of them for None or an unknown old id)."""
        if event_id is None:
            return list(self.log)
        return self.log[bisect.bisect(self._keys, stream_id_key(event_id)) :]

    async def publish(self, request: EventRequest) -> RevocationEvent:
        return await self.store.publish(request)

    def retained(self) -> Iterable[RevocationEvent]:
        return list(self.log)

    def prune(self) -> None:
        now = time.time()
        self.state.prune(now)
        cutoff = (now - self.state.retention) * 1000
        suspensions = {e.id for e in self.state.suspended.values()}
        keep = [
            (k, e) for k, e in zip(self._keys, self.log, strict=True)
            if k[0] >= cutoff or e.id in suspensions
        ]  # fmt: skip
        self._keys = [k for k, _ in keep]
        self.log = [e for _, e in keep]

    async def run(self) -> None:
        """Follow the store forever; prune and trim once a minute."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.store.follow(self.on_event, self.retained))
            while True:
                await asyncio.sleep(PRUNE_SECONDS)
                self.prune()
                oldest = min(self.state.suspended.values(), key=lambda e: stream_id_key(e.id),
                             default=None)  # fmt: skip
                await self.store.trim(oldest, int((time.time() - self.state.retention) * 1000))
