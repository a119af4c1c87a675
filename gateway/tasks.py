"""Owned background tasks: every long-lived coroutine is named, referenced and cancelled.

A bare `asyncio.create_task` can be garbage-collected mid-flight and is never awaited at
shutdown; ruff bans it everywhere but here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog

log = structlog.get_logger(__name__)
T = TypeVar("T")


def cancelling() -> bool:
    """True when the current task has been asked to stop. redis-py can turn a cancellation
    into a ConnectionError; a retry loop that catches Redis errors must check this, or a
    shutdown waits on it forever."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def cancel(task: asyncio.Task[Any], within: float = 2.0) -> None:
    """Cancel `task` and wait up to `within` seconds for it to stop: shutdown never hangs on
    a task that is slow to notice (a Redis call mid-flight)."""
    task.cancel()
    await asyncio.wait({task}, timeout=within)


async def first_of(*coroutines: Coroutine[Any, Any, T]) -> T:
    """Run `coroutines` at once; the first to end (returning or raising: among several, the
    first listed) decides, and the others are cancelled and awaited. A cancellation of the
    caller cancels them all. (asyncio.TaskGroup on Python 3.11 can leave the caller marked as
    cancelled after a child's failure, which a retry loop checking `cancelling()` takes for a
    shutdown.)"""
    tasks = [asyncio.create_task(c) for c in coroutines]  # noqa: TID251 - awaited right here
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return next(task for task in tasks if task in done).result()


class TaskGroup:
    """A set of named background tasks, cancelled and awaited together by `close()`."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine, name=name)  # noqa: TID251 - the one owner
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background_task_failed", task=task.get_name(), exc_info=task.exception())

    async def close(self, within: float = 5.0) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=within)
            for task in pending:
                log.warning("background_task_did_not_stop", task=task.get_name())
