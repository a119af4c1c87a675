"""`serve`'s garbage collection: no full collection on growth, one on schedule, and what
existed at start-up frozen out of every collection."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from gateway.server.garbage import NEVER, schedule_full_collections
from gateway.tasks import TaskGroup


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
    gc.unfreeze()


@pytest.mark.usefixtures("restored_gc")
async def test_full_collections_come_on_schedule_and_never_on_growth() -> None:
    tasks = TaskGroup()
    with capture_logs() as logs:
        schedule_full_collections(tasks, seconds=0.1)
        assert gc.get_threshold()[2] == NEVER
        assert gc.get_freeze_count() > 0  # start-up objects frozen
        await asyncio.sleep(0.35)
        await tasks.close()
    collections = [e for e in logs if e["event"] == "gc_full_collection"]
    assert 2 <= len(collections) <= 4


@pytest.mark.usefixtures("restored_gc")
async def test_zero_keeps_cpythons_own_rule() -> None:
    before = gc.get_threshold()
    tasks = TaskGroup()
    schedule_full_collections(tasks, seconds=0)
    assert gc.get_threshold() == before
    await tasks.close()
