"""The audit middleware: one line per request, its metrics, and a security event for every
refusal of an authenticated caller; `request_id` bound for every log line of the request.

No audit, no service: when the log sink breaks (stderr closed, a pipe whose reader died) the
line that found it out is lost, every later request but the health routes is refused with a
JSON 503 `audit_log_unavailable`, and /readyz says not ready, until a line is written again.
The health routes (probes, scrapes) are counted in `shape_gateway_health_requests_total`
instead of writing a line each.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Final

import structlog
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from gateway.audit.records import CLIENT_CLOSED, AuditRecord
from gateway.errors import Code, Refusal
from gateway.web.keys import AUDIT, AUDIT_LOG, METRICS, PUBLIC_PATHS, RULES, SECURITY
from gateway.web.middleware.refusals import refusal_response

log = structlog.get_logger(__name__)

UPSTREAM_REASONS: Final = frozenset(
    {Code.UPSTREAM_UNAVAILABLE.value, Code.UPSTREAM_TIMEOUT.value,
     Code.UPSTREAM_MISCONFIGURED.value, "upstream_aborted"}
)  # fmt: skip
LIMIT_REASONS: Final = frozenset({Code.RATE_LIMITED.value, Code.TOO_MANY_LIVE_CONNECTIONS.value})
AUDIT_DOWN: Final = Refusal(
    Code.AUDIT_UNAVAILABLE,
    "the gateway cannot write its audit log, so it serves nothing; retry on another replica",
)


@web.middleware
async def record_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    audit_log = request.app[AUDIT_LOG]
    record = AuditRecord(
        request_id=secrets.token_hex(8),
        method=request.method,
        path=request.path,
        rules=request.app[RULES].rules.digest,
    )
    request[AUDIT] = record
    transport = request.transport  # both gone once the connection is lost: kept from here
    connection = transport.get_protocol() if transport is not None else None
    bound = structlog.contextvars.bind_contextvars(request_id=record.request_id)
    try:
        if audit_log.healthy or request.path in request.app[PUBLIC_PATHS]:
            response = await handler(request)
        else:
            record.refuse(AUDIT_DOWN.code.value)
            response = refusal_response(AUDIT_DOWN)
    except asyncio.CancelledError:
        record.client_closed()
        _finish(request, record, connection)
        raise
    finally:
        structlog.contextvars.reset_contextvars(**bound)
    record.finish(response.status)
    if isinstance(response, web.Response):  # proxied answers are streamed, and counted there
        body = response.body  # our own answer (a refusal, JSON): its bytes, as for a proxied one
        if isinstance(body, bytes | bytearray) and request.method != hdrs.METH_HEAD:
            record.bytes = len(body)
    _finish(request, record, connection)
    return response


def _finish(
    request: web.Request, record: AuditRecord, connection: asyncio.BaseProtocol | None
) -> None:
    app = request.app
    if request.path in app[PUBLIC_PATHS]:
        # Probes and scrapes (every few seconds, from every prober): counted, not audited line by
        # line, and kept out of the request counter, whose 5xx ratio a not-ready 503 would skew.
        app[METRICS].count_health(request.path, record.status)
        return
    # Aborted by the write timeout (server/connections.py) rather than closed by the client?
    # Read by name: the pipeline does not import the server that runs it.
    if record.status == CLIENT_CLOSED and getattr(connection, "write_timed_out", False) is True:
        record.write_timed_out()  # the gateway cut it: the client had stopped reading
    app[AUDIT_LOG].write(record)
    observe(request, record)


def observe(request: web.Request, record: AuditRecord) -> None:
    """Metrics for the request; a security event for each refusal of an authenticated caller."""
    app = request.app
    metrics = app[METRICS]
    shapes = app[RULES].rules.shapes
    name = record.shape or ""
    shape = name if name in shapes else ("unknown" if name else "-")
    decision, reason = record.outcome()
    labels: tuple[str, ...] = (shape, decision, reason, str(record.status))
    if metrics.tenant_labels:
        labels += (record.identity.tenant if record.identity else "-",)
    live = "true" if record.live else "false"
    metrics.count_request(labels, live, time.monotonic() - record.started)
    if record.upstream is not None:
        metrics.response_bytes.observe(record.bytes)
    if record.upstream_status:
        metrics.count_upstream(record.upstream_status)
    if reason in UPSTREAM_REASONS:
        metrics.upstream_errors.labels(reason.removeprefix("upstream_")).inc()
    if reason in LIMIT_REASONS:
        metrics.limited.labels(reason).inc()
    if decision != "refused" or not 400 <= record.status < 500:
        return
    identity = record.identity
    if identity is None:
        metrics.unauthenticated_refusals.labels(reason).inc()
        return
    app[SECURITY].record(
        {
            "reason": reason,
            "status": str(record.status),
            "method": record.method,
            "path": record.path,
            "shape": shape,
            "user": identity.user,
            "tenant": identity.tenant,
            "role": identity.role,
            "request_id": record.request_id,
            "at": f"{time.time():.3f}",
        }
    )
