"""CORS, owned by the gateway (Electric's own `access-control-*` headers are dropped).

With `GATEWAY_CORS_ORIGINS` set, every response to an allowed origin carries the CORS headers,
the gateway's own errors included, so a browser can read a 401 and refresh its token; the
`electric-*` headers a client needs are exposed by name (`*` is ignored with credentials).
"""

from __future__ import annotations

from typing import Final

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict

from gateway.settings import Settings
from gateway.upstream.headers import EXPOSED, add_vary
from gateway.web.keys import SETTINGS

ALLOWED_METHODS: Final = "GET, HEAD, POST, OPTIONS"
ALLOWED_HEADERS: Final = frozenset(
    {"authorization", "content-type", "if-none-match", "traceparent", "x-tenant-id",
     "cache-control", "accept", "last-event-id"}
)  # fmt: skip
MAX_AGE: Final = "86400"
EXPOSED_LIST: Final = ", ".join(EXPOSED)


def allowed_origin(settings: Settings, origin: str | None) -> str | None:
    """The origin to echo, or None. `*` allows any origin (echoed, never `*` itself)."""
    if origin is None or not settings.cors_origins:
        return None
    if origin in settings.cors_origins or "*" in settings.cors_origins:
        return origin
    return None


def apply_cors(settings: Settings, request: web.BaseRequest, headers: CIMultiDict[str]) -> None:
    if not settings.cors_origins:
        return
    add_vary(headers, ["Origin"])
    origin = allowed_origin(settings, request.headers.get(hdrs.ORIGIN))
    if origin is None:
        return
    headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
    headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = EXPOSED_LIST
    # Credentialed mode for listed origins even without cookie auth: Chromium applies
    # `Clear-Site-Data: "cache"` to a cross-origin answer only when the request was made with
    # `credentials: "include"`, and the browser refuses such an answer without this header.
    # Safe: only listed origins get it, and without GATEWAY_AUTH_COOKIE no cookie is a
    # credential here.
    headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"


def preflight(settings: Settings, request: web.BaseRequest) -> web.Response:
    """Answer OPTIONS without authentication, as browsers send preflights without credentials."""
    response = web.Response(status=204, headers={hdrs.ALLOW: ALLOWED_METHODS})
    origin = allowed_origin(settings, request.headers.get(hdrs.ORIGIN))
    if origin is not None:
        asked = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS, "")
        granted = [h.strip() for h in asked.split(",") if h.strip().lower() in ALLOWED_HEADERS]
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = ALLOWED_METHODS
        if granted:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = ", ".join(granted)
        response.headers[hdrs.ACCESS_CONTROL_MAX_AGE] = MAX_AGE
    apply_cors(settings, request, response.headers)
    return response


@web.middleware
async def answer_preflights(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: a preflight is answered here, before (and without) authentication."""
    if request.method == hdrs.METH_OPTIONS:
        return preflight(request.app[SETTINGS], request)
    return await handler(request)
