"""The event loop runs the coroutine to its end, with uvloop when installed, else asyncio's."""

from __future__ import annotations

import asyncio

from gateway.server.runtime import run_async


def test_the_coroutine_runs_to_its_end_on_a_loop_of_its_own() -> None:
    ran: list[str] = []

    async def main() -> None:
        await asyncio.sleep(0)
        ran.append(type(asyncio.get_running_loop()).__module__)

    run_async(main())
    assert len(ran) == 1
    assert ran[0].split(".")[0] in ("uvloop", "asyncio")
