"""Garbage collection for a process that holds thousands of requests: full collections on a
schedule, not whenever CPython's growth rule fires.

CPython collects its oldest generation each time the objects that survived the younger ones
grew by a quarter since the last full collection. A replica holding 3,000 long-polls keeps
about a million objects alive, and every long-poll Electric answers after 20 s and the client
sends again promotes a few hundred more, so a full collection comes every few seconds and stops
the event loop for 0.3-2 s (measured with gc.callbacks holding 3,333 streams), delaying what a
revocation should cut.
Reference counting frees nearly all of a finished request (the cycles left measured a few MB a
minute at 10,000 streams), so `serve` (each worker, with GATEWAY_WORKERS):
- freezes what exists once it has started (modules, settings): never collected again;
- collects the oldest generation every `GATEWAY_GC_SECONDS` from an owned task, and never on
  growth (0 keeps CPython's own rule);
- leaves the young generations alone (a collection of those takes milliseconds).
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Final

import structlog

from gateway.tasks import TaskGroup

log = structlog.get_logger(__name__)
NEVER: Final = 2**31 - 1  # a threshold the oldest generation's counter never reaches


async def collect_every(seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        started = time.perf_counter()
        collected = gc.collect()
        log.info("gc_full_collection", collected=collected,
                 duration_ms=round((time.perf_counter() - started) * 1000, 1))  # fmt: skip


def schedule_full_collections(tasks: TaskGroup, seconds: float) -> None:
    """From now on, full collections every `seconds` from a task of `tasks`, never on growth;
    what exists now is frozen out of them (0: leave CPython's default policy alone)."""
    if seconds <= 0:
        return
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, NEVER)
    tasks.spawn(collect_every(seconds), "gc-full-collection")
