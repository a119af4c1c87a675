"""The router (`router.ex`): resolve the path the way Plug does (`/v1//shape/` is `/v1/shape`),
dispatch, and put the router-level headers (server, request id, CORS) on every response.
"""

from __future__ import annotations

import secrets

from aiohttp import hdrs, web

from electric_imitation.control import handle_control
from electric_imitation.headers import (
    OTHER_METHODS,
    PLUG_DEFAULT_CACHE,
    cors_headers,
    server_banner,
)
from electric_imitation.pipeline import CORS, SHAPE_ROUTE_METHODS, shape_route
from electric_imitation.responses import json_response
from electric_imitation.state import ELECTRIC

REQUEST_ID = web.RequestKey("electric_request_id", str)


async def dispatch(request: web.Request) -> web.StreamResponse:
    """The router: one handler for every path, matching on the normalised segments."""
    state = request.app[ELECTRIC]
    segments = [segment for segment in request.path.split("/") if segment]
    reads = request.method in (hdrs.METH_GET, hdrs.METH_HEAD)
    if segments[:1] == ["_control"]:
        return await handle_control(request, state, segments[1:])
    if segments == ["v1", "shape"] and request.method in SHAPE_ROUTE_METHODS:
        return await shape_route(request, state)
    request[CORS] = OTHER_METHODS
    if segments == ["v1", "health"] and reads:
        return json_response(
            200, {"status": "active"}, {hdrs.CACHE_CONTROL: "no-cache, no-store, must-revalidate"}
        )
    if segments == [] and reads:
        return web.Response(status=200, headers={hdrs.CACHE_CONTROL: PLUG_DEFAULT_CACHE})
    return web.Response(
        status=404, text="Not found", headers={hdrs.CACHE_CONTROL: PLUG_DEFAULT_CACHE}
    )


async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Router-level headers on every response: server, request id, CORS once past auth."""
    if request.path.startswith("/_control"):
        return  # the test hooks are not Electric
    config = request.app[ELECTRIC].config
    response.headers["electric-server"] = server_banner(config)
    response.headers["x-request-id"] = request_id(request)
    methods = request.get(CORS)
    if methods is not None:
        for name, value in cors_headers(request, config, methods).items():
            response.headers.setdefault(name, value)


def request_id(request: web.Request) -> str:
    """Plug.RequestId: reuse a sane incoming `x-request-id`, else mint one."""
    if REQUEST_ID not in request:
        incoming = request.headers.get("x-request-id", "")
        request[REQUEST_ID] = incoming if 20 <= len(incoming) <= 200 else secrets.token_urlsafe(15)
    return request[REQUEST_ID]
