"""/healthz (the process answers), /readyz (revocation view fresh, audit log writable) and
/metrics."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.web.keys import AUDIT_LOG, METRICS, REVOCATIONS


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the revocation view is confirmed fresh (Redis answered within the last 5 s,
    or no Redis is configured) and the audit log takes lines. A load balancer stops routing to
    a replica that is not ready. Anyone may ask, so the answer is only ready or not: rule paths
    and reload errors are for the admin API (/admin/rules)."""
    ready = request.app[REVOCATIONS].fresh() and request.app[AUDIT_LOG].healthy
    return web.json_response(
        {"status": "ready" if ready else "not_ready"}, status=200 if ready else 503
    )


async def metrics(request: web.Request) -> web.Response:
    request.app[REVOCATIONS].fresh()  # refresh the gauge
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
