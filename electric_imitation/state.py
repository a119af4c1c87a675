"""The fake's state and its test hooks, stored on the app under the typed key `ELECTRIC`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from electric_imitation.changes import ChangeListener, current_lsn, prepare_capture
from electric_imitation.config import ElectricConfig
from electric_imitation.consumer import Consumer, LsnTracker
from electric_imitation.db import Database, connect
from electric_imitation.faults import Fault, FaultPlan
from electric_imitation.recorder import RecordedRequest, RequestRecorder
from electric_imitation.shape_cache import Rotation, ShapeCache
from electric_imitation.shapes import Shape, ShapeRegistry
from electric_imitation.tasks import OwnedTasks


@dataclass(slots=True)
class Stats:
    """Request counters a proxy test asserts on (e.g. an abandoned long-poll was cancelled)."""

    active_requests: int = 0  # /v1/shape requests being handled right now
    held_requests: int = 0  # long-polls and SSE streams currently waiting for changes
    cancelled_requests: int = 0  # held requests whose client went away


class ElectricState:
    """Everything with a lifetime (connections, listener task) plus the test hooks."""

    def __init__(self, config: ElectricConfig) -> None:
        self.config = config
        self.recorder = RequestRecorder()
        self.faults = FaultPlan()
        self.stats = Stats()
        self.registry = ShapeRegistry(handle_digits=config.server.handle_digits)
        self.lsn = LsnTracker()
        self.tasks = OwnedTasks()
        self._db: Database | None = None
        self._cache: ShapeCache | None = None
        self._listener: ChangeListener | None = None
        self.closing = False

    async def start(self) -> None:
        """Connect, install change capture and start listening before any shape exists."""
        conn = await connect(self.config.dsn)
        await prepare_capture(conn)
        self.lsn.last_lsn = await current_lsn(conn)
        self._db = Database(conn)
        self._cache = ShapeCache(self._db, self.registry, self.config)
        consumer = Consumer(self._db, self.registry, self.lsn)
        self._listener = await ChangeListener.open(self.config.dsn, consumer.apply)
        self.tasks.spawn(self._listener.run(), name="electric-fake-listener")

    def release_held(self) -> None:
        """At shutdown: end held long-polls (as timeouts) and SSE streams now, not in 20-60 s."""
        self.closing = True
        for shape in self.registry.all():
            shape.signal.fire()

    async def stop(self) -> None:
        await self.tasks.cancel_all()
        if self._listener is not None:
            await self._listener.close()
        if self._db is not None:
            await self._db.close()
        for shape in self.registry.all():
            self.registry.remove(shape)

    @property
    def db(self) -> Database:
        assert self._db is not None, "the fake Electric app has not started"
        return self._db

    @property
    def shapes(self) -> ShapeCache:
        assert self._cache is not None, "the fake Electric app has not started"
        return self._cache

    # --- test hooks -------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every `/v1/shape` request so far, oldest first."""
        return self.recorder.requests

    def clear_requests(self) -> None:
        self.recorder.clear()

    def inject(self, fault: Fault) -> None:
        """Queue a failure for the next `fault.count` shape requests."""
        self.faults.add(fault)

    def clear_faults(self) -> None:
        self.faults.clear()

    async def rotate(
        self, *, handle: str | None = None, table: str | None = None
    ) -> list[Rotation]:
        """Give the shape (or every shape of `table`) a new handle; held requests end in 409."""
        if (handle is None) == (table is None):
            raise ValueError("pass exactly one of handle= or table=")
        return await self.shapes.rotate(handle=handle, table=table)

    def shape(self, handle: str) -> Shape | None:
        return self.registry.by_handle(handle)

    async def wait_for(self, condition: Callable[[Stats], bool], within: float = 5.0) -> None:
        """Wait until `condition(stats)` holds, e.g. `lambda s: s.held_requests == 1`."""
        async with asyncio.timeout(within):
            # Counters change in many places; polling beats an Event per counter here.
            while not condition(self.stats):  # noqa: ASYNC110
                await asyncio.sleep(0.01)


ELECTRIC = web.AppKey("electric", ElectricState)
