"""`make_electric_app`: the aiohttp application, its state and its lifetime in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from electric_imitation.compression import compress_whole_bodies
from electric_imitation.config import ElectricConfig
from electric_imitation.http import dispatch, on_response_prepare
from electric_imitation.state import ELECTRIC, ElectricState


def make_electric_app(config: ElectricConfig) -> web.Application:
    """A fake Electric on real PostgreSQL; `app[ELECTRIC]` holds the state and test hooks."""
    # Bandit compresses what Electric sends whole (errors above all): see `compression`.
    app = web.Application(middlewares=[compress_whole_bodies])
    state = ElectricState(config)
    app[ELECTRIC] = state

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    async def release(_app: web.Application) -> None:
        state.release_held()

    app.cleanup_ctx.append(lifetime)
    # on_shutdown runs before aiohttp waits for open handlers: let held requests finish first.
    app.on_shutdown.append(release)
    app.on_response_prepare.append(on_response_prepare)
    # One catch-all route: `http.dispatch` resolves paths the way Electric's Plug router does.
    app.router.add_route("*", "/{path:.*}", dispatch)
    return app
