"""Admission: after authentication, before any route: the revocation check (a dict lookup, or
the fail mode while the view is stale), the caller's request budget, and for a live request
(a long-poll, an SSE stream, the event feed) a live slot held until it ends.

Deny by default: every authenticated route is admitted; the routes exempt from admission are
the public health routes and the admin API, listed in `web/app.py`.
"""

from __future__ import annotations

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
)

IsLive = Callable[[web.Request], bool]


def is_live(request: web.Request, live_routes: Mapping[str, IsLive]) -> bool:
    decide = live_routes.get(request.path)
    return decide is not None and decide(request)


@web.middleware
async def admit(request: web.Request, handler: Handler) -> web.StreamResponse:
    app = request.app
    exempt = request.path in app[PUBLIC_PATHS] or request.path.startswith(ADMIN_PREFIX)
    if exempt and IDENTITY not in request:  # a health route, or the admin API (its own token)
        request[AUDIT].admit()
        return await handler(request)
    identity = request[IDENTITY]
    refusal = app[REVOCATIONS].check(identity)
    if refusal is not None:
        raise refusal
    plan = app[RULES].rules.limits.plan_for(identity.plan)
    decision = await app[LIMITER].take(identity, plan)
    if decision.refusal is not None:
        raise decision.refusal
    request[AUDIT].admit()
    if not is_live(request, app[LIVE_ROUTES]):
        return await handler(request)
    limiter = app[LIMITER]
    lease = await limiter.acquire(identity, plan)
    if lease is None:
        raise too_many_live(plan.live_connections_per_user)
    request[AUDIT].live = True
    gauge = app[METRICS].live_connections
    gauge.inc()
    try:
        # Again, now that the Redis round trips above are over: an event applied while they
        # were in flight cut nothing of this request (its stream is not open yet), and a live
        # request would otherwise be held for the whole long-poll. Nothing awaits between
        # here and the handler opening its stream.
        refusal = app[REVOCATIONS].check(identity)
        if refusal is not None:
            raise refusal
        return await handler(request)
    finally:
        gauge.dec()
        await limiter.release(identity, lease)
