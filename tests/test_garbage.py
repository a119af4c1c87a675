"""`serve`'s garbage collection: no full collection on growth, one on schedule, and what
existed at start-up frozen out of every collection."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from gateway.garbage import NEVER, with_scheduled_collection


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
    gc.unfreeze()


@pytest.mark.usefixtures("restored_gc")
async def test_full_collections_come_on_schedule_and_never_on_growth() -> None:
    seen: list[tuple[int, int]] = []

    async def main() -> None:
        seen.append((gc.get_threshold()[2], gc.get_freeze_count()))
        await asyncio.sleep(0.35)

    with capture_logs() as logs:
        await with_scheduled_collection(main(), seconds=0.1)
    assert seen[0][0] == NEVER
    assert seen[0][1] > 0  # start-up objects frozen
    collections = [e for e in logs if e["event"] == "gc_full_collection"]
    assert 2 <= len(collections) <= 4


@pytest.mark.usefixtures("restored_gc")
async def test_zero_keeps_cpythons_own_rule() -> None:
    before = gc.get_threshold()
    thresholds: list[tuple[int, int, int]] = []

    async def main() -> None:
        thresholds.append(gc.get_threshold())

    await with_scheduled_collection(main(), seconds=0)
    assert thresholds == [before]
