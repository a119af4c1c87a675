"""Run the gateway: listen, reload rules on SIGHUP, shut down gracefully on SIGTERM/SIGINT.

Shutdown order (aiohttp AppRunner.cleanup): stop listening; on_shutdown ends held long-polls
and SSE streams (clients reconnect to another replica); snapshots in flight get GRACE seconds to
finish; then each context cancels its background tasks and closes the clients they used.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping
from typing import Final

import structlog
from aiohttp import web, web_response

from gateway.log_sink import SINK
from gateway.server.connections import ConnectionGuard, GuardedSite, default_max_connections
from gateway.server.garbage import schedule_full_collections
from gateway.settings import Settings
from gateway.upstream.client import Timeouts
from gateway.web.app import make_app
from gateway.web.keys import METRICS, PROBES, RULES, TASKS

log = structlog.get_logger(__name__)
GRACE: Final = 30.0
LISTEN_BACKLOG: Final = 4096  # the kernel caps it at net.core.somaxconn
SERVER_NAME: Final = "shape-gateway"

# aiohttp names itself and Python, with versions, in `Server` on every response, the ones its
# HTTP parser answers without us included; a version banner only tells an attacker what to try.
web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]


async def start(
    settings: Settings,
    env: Mapping[str, str],
    grace: float = GRACE,
    timeouts: Timeouts | None = None,
    reuse_port: bool = False,
) -> tuple[web.AppRunner, GuardedSite]:
    """Start serving on settings.host/port; returns the runner (cleanup() stops it)."""
    app = make_app(settings, env, timeouts)
    runner = web.AppRunner(
        app,
        handler_cancellation=True,
        shutdown_timeout=grace,
        access_log=None,
        # A connection must deliver a whole request within this long of opening or of its
        # previous response (aiohttp closes one still waiting then): half-sent headers and
        # idle keep-alives both go.
        keepalive_timeout=settings.header_timeout,
    )
    await runner.setup()
    guard = ConnectionGuard(
        settings.max_connections or default_max_connections(),
        app[METRICS].connections_refused.inc,
        write_timeout=settings.write_timeout,
        on_write_timeout=app[METRICS].write_timeouts.inc,
    )
    # A reconnect storm (a replica restarting under 1,000s of live clients) overflows aiohttp's
    # default listen backlog of 128: dropped SYNs cost each client a retry of a second or more.
    site = GuardedSite(
        runner, settings.host, settings.port, guard, backlog=LISTEN_BACKLOG, reuse_port=reuse_port
    )
    try:
        await site.start()
    except BaseException:
        # The app has started (its clients, its background tasks): stop it before reporting,
        # or its HTTP client session is left for the garbage collector to complain about.
        await runner.cleanup()
        raise
    app[PROBES].start(app[TASKS])
    return runner, site


async def serve(settings: Settings, env: Mapping[str, str], *, reuse_port: bool = False) -> None:
    runner, site = await start(settings, env, reuse_port=reuse_port)
    app = runner.app
    schedule_full_collections(app[TASKS], settings.gc_seconds)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: app[RULES].reload("sighup"))
    host, port = runner.addresses[0][:2]
    log.info(
        "gateway_listening",
        url=f"http://{host}:{port}",
        upstream=settings.electric_url,
        rules=app[RULES].rules.digest,
        max_connections=site.guard.max_connections,
    )
    await stop.wait()
    log.info("gateway_stopping", grace_seconds=GRACE)
    await runner.cleanup()
    log.info("gateway_stopped")
    SINK.flush()  # the last lines, before the loop (which would flush them) is gone
