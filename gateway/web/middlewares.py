"""Request-scoped concerns: the audit record, refusal rendering, and response headers.

Refusals are rendered here and only here. Every response, proxied or ours, passes
`on_response_prepare`, which makes caching private, adds `Vary` and CORS: one place, so no
route can forget them.
"""

from __future__ import annotations

import asyncio
import secrets

import structlog
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from gateway.audit.records import AuditRecord
from gateway.errors import Code, Refusal
from gateway.upstream.headers import add_vary, private_cache_control
from gateway.web.cors import apply_cors, preflight
from gateway.web.keys import AUDIT, RULES, SETTINGS

log = structlog.get_logger(__name__)
REQUEST_ID = "X-Request-Id"
_HTTP_CODES = {
    404: (Code.NOT_FOUND, "there is nothing at this path; shapes are at /v1/shape"),
    405: (Code.METHOD_NOT_ALLOWED, "this method is not allowed here"),
    413: (Code.INVALID_PARAMETER, "the request body is too large"),
}


def refusal_response(refusal: Refusal, headers: dict[str, str] | None = None) -> web.Response:
    response = web.json_response(refusal.as_json(), status=refusal.status, headers=headers)
    if refusal.code in (Code.MISSING_TOKEN, Code.INVALID_TOKEN, Code.TOKEN_EXPIRED):
        response.headers[hdrs.WWW_AUTHENTICATE] = 'Bearer realm="shape-gateway"'
    return response


@web.middleware
async def audit_and_render(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: one audit line per request, and refusals rendered as `{error, message}`."""
    if request.method == hdrs.METH_OPTIONS:
        return preflight(request.app[SETTINGS], request)
    record = AuditRecord(
        request_id=secrets.token_hex(8),
        method=request.method,
        path=request.path,
        rules=request.app[RULES].rules.digest,
    )
    request[AUDIT] = record
    try:
        response = await handler(request)
    except Refusal as refusal:
        record.decision, record.reason = "refused", refusal.code.value
        response = refusal_response(refusal)
    except web.HTTPException as error:
        code, message = _HTTP_CODES.get(error.status, (Code.INVALID_PARAMETER, error.reason))
        record.decision, record.reason = "refused", code.value
        response = refusal_response(Refusal(code, message), headers=_allow_header(error))
    except asyncio.CancelledError:
        record.reason = "client_closed"
        record.status = 499
        record.emit()
        raise
    except Exception:
        log.exception("unhandled_error", request_id=record.request_id, path=request.path)
        record.reason = "internal_error"
        response = web.json_response(
            {"error": "internal_error", "message": "the gateway failed; this is a bug, retry"},
            status=500,
        )
    record.status = response.status
    record.emit()
    return response


def _allow_header(error: web.HTTPException) -> dict[str, str] | None:
    allow = error.headers.get(hdrs.ALLOW)
    return {hdrs.ALLOW: allow} if allow else None


async def finish_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: private caching, Vary on identity headers, CORS, request id."""
    settings = request.app[SETTINGS]
    headers = response.headers
    headers[hdrs.CACHE_CONTROL] = private_cache_control(headers.get(hdrs.CACHE_CONTROL))
    vary = [hdrs.AUTHORIZATION, "X-Tenant-Id"] + ([hdrs.COOKIE] if settings.auth_cookie else [])
    add_vary(headers, vary)
    apply_cors(settings, request, headers)
    record = request.get(AUDIT)
    if record is not None:
        headers[REQUEST_ID] = record.request_id
