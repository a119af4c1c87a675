"""/healthz (the process answers), /readyz (rules loaded, revocation view fresh) and /metrics."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.web.keys import METRICS, REVOCATIONS, RULES, SETTINGS


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when rules are loaded and the revocation view is confirmed fresh (Redis answered
    within the last 5 s, or no Redis is configured). A load balancer stops routing to a replica
    that is not ready; with GATEWAY_FAIL_MODE=closed it would refuse shape requests anyway."""
    holder = request.app[RULES]
    fresh = request.app[REVOCATIONS].fresh()
    body = {
        "status": "ready" if fresh else "not_ready",
        "rules": {
            "digest": holder.rules.digest,
            "path": holder.path,
            "shapes": len(holder.rules.shapes),
            "last_reload_error": list(holder.last_error),
        },
        "revocations": {
            "fresh": fresh,
            "fail_mode": request.app[SETTINGS].fail_mode,
            "store": "redis" if request.app[SETTINGS].redis_url else "memory",
        },
    }
    return web.json_response(body, status=200 if fresh else 503)


async def metrics(request: web.Request) -> web.Response:
    request.app[REVOCATIONS].fresh()  # refresh the gauge
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
