"""`first_of`: the first coroutine to end decides, the others are cancelled, and the caller is
left as it was (asyncio.TaskGroup on Python 3.11 could leave it marked as cancelled)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.tasks import cancelling, first_of


async def forever() -> int:
    await asyncio.Event().wait()
    return 0


async def fail_soon() -> int:
    await asyncio.sleep(0.01)
    raise ConnectionError("gone")


async def answer_soon() -> int:
    await asyncio.sleep(0.01)
    return 42


async def test_the_first_to_end_decides_and_the_caller_is_not_left_cancelling() -> None:
    assert await first_of(forever(), answer_soon()) == 42
    with pytest.raises(ConnectionError):
        await first_of(forever(), fail_soon())
    assert not cancelling()  # a retry loop goes on: this was no shutdown


async def test_the_others_are_cancelled_and_awaited() -> None:
    ended: list[str] = []

    async def tracked() -> int:
        try:
            await asyncio.Event().wait()
        finally:
            ended.append("cancelled")
        return 0

    await first_of(tracked(), answer_soon())
    assert ended == ["cancelled"]


async def test_cancelling_the_caller_cancels_every_coroutine() -> None:
    ended: list[str] = []

    async def tracked() -> int:
        try:
            await asyncio.Event().wait()
        finally:
            ended.append("cancelled")
        return 0

    task = asyncio.ensure_future(first_of(tracked(), tracked()))  # noqa: TID251 - the test's own
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ended == ["cancelled", "cancelled"]
