"""Admission: after authentication, before any route: the revocation check (a dict lookup, or
the fail mode while the view is stale), the caller's request budget, for a live request (a
long-poll, an SSE stream, the event feed) a live slot held until it ends, and the request
tracked as an open stream until it is answered, so that a revocation or the token's expiry
ends it whatever it is doing (reading its body, holding a long-poll, streaming).

Deny by default: every authenticated route is admitted; the routes exempt from admission are
the public health routes and the admin API, listed in `web/app.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.limits import too_many_live
from gateway.web.keys import (
    ADMIN_PREFIX,
    AUDIT,
    IDENTITY,
    LIMITER,
    LIVE_ROUTES,
    METRICS,
    PUBLIC_PATHS,
    REVOCATIONS,
    RULES,
    STREAM,
    STREAMS,
)
from gateway.web.stops import end_stopped

IsLive = Callable[[web.Request], bool]


def is_live(request: web.Request, live_routes: Mapping[str, IsLive]) -> bool:
    decide = live_routes.get(request.path)
    return decide is not None and decide(request)


def check_again(request: web.Request) -> None:
    """The revocation check once more, for a route that waited on its client (a request body):
    a stop cuts the request meanwhile, and this also catches a view that went stale."""
    refusal = request.app[REVOCATIONS].check(request[IDENTITY])
    if refusal is not None:
        raise refusal


@web.middleware
async def admit(request: web.Request, handler: Handler) -> web.StreamResponse:
    app = request.app
    exempt = request.path in app[PUBLIC_PATHS] or request.path.startswith(ADMIN_PREFIX)
    if exempt and IDENTITY not in request:  # a health route, or the admin API (its own token)
        request[AUDIT].admit()
        return await handler(request)
    identity = request[IDENTITY]
    check_again(request)
    plan = app[RULES].rules.limits.plan_for(identity.plan)
    decision = await app[LIMITER].take(identity, plan)
    if decision.refusal is not None:
        raise decision.refusal
    request[AUDIT].admit()
    if not is_live(request, app[LIVE_ROUTES]):
        return await _tracked(request, handler, live=False)
    limiter = app[LIMITER]
    lease = await limiter.acquire(identity, plan)
    if lease is None:
        raise too_many_live(plan.live_connections_per_user)
    request[AUDIT].live = True
    gauge = app[METRICS].live_connections
    gauge.inc()
    try:
        return await _tracked(request, handler, live=True)
    finally:
        gauge.dec()
        await limiter.release(identity, lease)


async def _tracked(request: web.Request, handler: Handler, live: bool) -> web.StreamResponse:
    """Run the route as an open stream. Checked again first, now that the Redis round trips
    above are over: an event applied while they were in flight cut nothing of this request
    (it was not tracked yet). Nothing awaits between the check and the tracking. A stop that
    reaches a route which does not answer it itself (a body being read) is answered here."""
    check_again(request)
    with request.app[STREAMS].track(request[IDENTITY], live) as stream:
        request[STREAM] = stream
        try:
            return await handler(request)
        except asyncio.CancelledError:
            await end_stopped(request, None)  # a stop, nothing sent: raises its reason
            raise  # not a stop: the client went away, or the server is cancelling us
