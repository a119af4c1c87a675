"""Request-scoped concerns: the audit record, refusal rendering, and response headers.

Refusals are rendered here and only here. Every response, proxied or ours, passes
`on_response_prepare`, which makes caching private, adds `Vary` and CORS: one place, so no
route can forget them.
"""

from __future__ import annotations

import asyncio
import secrets
import time

import structlog
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from gateway.audit.records import AuditRecord
from gateway.errors import Code, Refusal
from gateway.upstream.headers import add_vary, private_cache_control
from gateway.web.cors import apply_cors, preflight
from gateway.web.keys import AUDIT, METRICS, RULES, SECURITY, SETTINGS

log = structlog.get_logger(__name__)
REQUEST_ID = "X-Request-Id"
_HTTP_CODES = {
    404: (Code.NOT_FOUND, "there is nothing at this path; shapes are at /v1/shape"),
    405: (Code.METHOD_NOT_ALLOWED, "this method is not allowed here"),
    413: (Code.INVALID_PARAMETER, "the request body is too large"),
}


def refusal_response(refusal: Refusal, headers: dict[str, str] | None = None) -> web.Response:
    response = web.json_response(refusal.as_json(), status=refusal.status, headers=headers)
    if refusal.retry_after is not None:
        response.headers[hdrs.RETRY_AFTER] = str(refusal.retry_after)
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
        # A stream ended by a revocation or shutdown keeps its `stopped:<code>` reason, so the
        # log tells a cut-off apart from a request refused at the door.
        if not record.reason.startswith("stopped:"):
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
    observe(request, record)
    return response


UPSTREAM_REASONS = frozenset(
    {Code.UPSTREAM_UNAVAILABLE.value, Code.UPSTREAM_TIMEOUT.value,
     Code.UPSTREAM_MISCONFIGURED.value, "upstream_aborted"}
)  # fmt: skip
LIMIT_REASONS = frozenset({Code.RATE_LIMITED.value, Code.TOO_MANY_LIVE_CONNECTIONS.value})


def observe(request: web.Request, record: AuditRecord) -> None:
    """Metrics for the request, and a security event for every refused (4xx) decision."""
    metrics = request.app[METRICS]
    shapes = request.app[RULES].rules.shapes
    shape = record.shape if record.shape in shapes else ("unknown" if record.shape else "-")
    labels = [shape, record.decision, record.reason, str(record.status)]
    if metrics.tenant_labels:
        labels.append(record.identity.tenant if record.identity else "-")
    metrics.requests.labels(*labels).inc()
    live = record.upstream is not None and record.upstream.live
    metrics.duration.labels(record.decision, str(live).lower()).observe(
        time.monotonic() - record.started
    )
    if record.upstream is not None:
        metrics.response_bytes.observe(record.bytes)
    if record.reason in UPSTREAM_REASONS:
        metrics.upstream_errors.labels(record.reason.removeprefix("upstream_")).inc()
    if record.reason in LIMIT_REASONS:
        metrics.limited.labels(record.reason).inc()
    if record.decision == "refused" and 400 <= record.status < 500:
        identity = record.identity
        request.app[SECURITY].record(
            {
                "reason": record.reason,
                "status": str(record.status),
                "method": record.method,
                "path": record.path,
                "shape": shape or "-",
                "user": identity.user if identity else "",
                "tenant": identity.tenant if identity else "",
                "role": identity.role if identity else "",
                "request_id": record.request_id,
                "at": f"{time.time():.3f}",
            }
        )


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
