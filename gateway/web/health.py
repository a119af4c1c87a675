"""/healthz (the process answers) and /readyz (rules loaded; shared state reachable)."""

from __future__ import annotations

from aiohttp import web

from gateway.web.keys import RULES


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    holder = request.app[RULES]
    body = {
        "status": "ready",
        "rules": {
            "digest": holder.rules.digest,
            "path": holder.path,
            "shapes": len(holder.rules.shapes),
            "last_reload_error": list(holder.last_error),
        },
    }
    return web.json_response(body)
