"""on_response_prepare: the headers every response gets, proxied or our own, so no route can
forget them: private caching revalidated through the gateway (never stored for an error),
`Vary` on what picks the identity, CORS, and the request id."""

from __future__ import annotations

from typing import Final

from aiohttp import hdrs, web

from gateway.upstream.headers import add_vary, private_cache_control
from gateway.web.keys import AUDIT, SETTINGS
from gateway.web.middleware.cors import apply_cors

REQUEST_ID: Final = "X-Request-Id"


async def finish_headers(request: web.Request, response: web.StreamResponse) -> None:
    settings = request.app[SETTINGS]
    headers = response.headers
    headers[hdrs.CACHE_CONTROL] = private_cache_control(
        headers.get(hdrs.CACHE_CONTROL), response.status
    )
    vary = [hdrs.AUTHORIZATION, "X-Tenant-Id"] + ([hdrs.COOKIE] if settings.auth_cookie else [])
    add_vary(headers, vary)
    apply_cors(settings, request, headers)
    record = request.get(AUDIT)
    if record is not None:
        headers[REQUEST_ID] = record.request_id
