"""/healthz (the process answers), /readyz (revocation view fresh, audit log writable, the
default upstream answering) and /metrics."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.web.keys import AUDIT_LOG, METRICS, PROBES, REVOCATIONS


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def is_ready(app: web.Application) -> bool:
    """The revocation view is confirmed fresh (Redis answered within the last 5 s, or no Redis
    is configured), the audit log takes lines, and the default upstream answered its last probe
    (see upstream/probe.py)."""
    return app[REVOCATIONS].fresh() and app[AUDIT_LOG].healthy and app[PROBES].ready()


async def readyz(request: web.Request) -> web.Response:
    """A load balancer stops routing to a replica that is not ready. Anyone may ask, so the
    answer is only ready or not: what is failing is for the admin API (/admin/status)."""
    ready = is_ready(request.app)
    return web.json_response(
        {"status": "ready" if ready else "not_ready"}, status=200 if ready else 503
    )


async def metrics(request: web.Request) -> web.Response:
    request.app[REVOCATIONS].fresh()  # refresh the gauge
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
