"""Stream an upstream response to the client as it arrives: never buffered, never re-encoded.

Chunks are written the moment aiohttp reads them (`iter_any`), so snapshot chunks are never
held whole and each SSE event reaches the client when Electric flushes it. A client that goes
away cancels this handler (the server runs with handler_cancellation), or makes a write fail
if it hangs up just as we write: either way the upstream connection is closed at once
(electric PR #4768: an abandoned long-poll otherwise pins Electric ~20 s) and the audit line
says 499 `client_closed`. A stream stopped on purpose (shutdown, revocation, its token's
expiry: gateway/streams.py) answers with its reason if nothing was sent yet, or ends cleanly if
it was; its upstream request is closed at once either way.
"""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import hdrs, web

from gateway.audit.records import AuditRecord
from gateway.errors import Code, Refusal
from gateway.shape.plan import UpstreamRequest
from gateway.upstream.client import UpstreamResponse, send
from gateway.upstream.connection import UpstreamBroken
from gateway.upstream.errors import LOGGED_BYTES, refuse_unless_electric_answered, rejection_details
from gateway.upstream.headers import LOCAL_TTL, client_headers
from gateway.web.keys import AUDIT, STREAM, TIMEOUTS, UPSTREAMS

log = structlog.get_logger(__name__)


class FiniteResponse(web.StreamResponse):
    """A proxied response whose headers leave with its first body bytes: a catch-up or a
    long-poll answer is then one write (headers, body, terminator) instead of two. An SSE
    stream keeps the default: its headers go out at once, before any event."""

    _send_headers_immediately = False


async def _stream_body(
    request: web.Request,
    upstream: UpstreamResponse,
    response: web.StreamResponse,
    streaming: bool,
    kept: bytearray | None = None,
) -> None:
    """Copy the body. A finite body is prepared (its headers settled) with its first chunk and
    holds back its latest chunk, so the last one leaves with the terminator: a catch-up or a
    long-poll answer is one write. If Electric breaks off before anything was sent, the client
    gets our 502 instead of a connection closed without an answer (which a client may retry
    blindly); after that, the only honest signal left is an unterminated body."""
    record = request[AUDIT]
    held = b""
    try:
        async for chunk in upstream.chunks():
            record.bytes += len(chunk)
            if kept is not None and len(kept) < LOGGED_BYTES:
                kept += chunk  # an error of Electric's: its start, for the log
            if streaming:
                await response.write(chunk)
                continue
            if not response.prepared:
                await response.prepare(request)
            elif held:
                await response.write(held)
            held = chunk
    except (UpstreamBroken, TimeoutError) as error:
        log.warning("upstream_aborted_mid_body", reason=str(error))
        record.upstream_aborted()
        if not response.prepared:
            raise Refusal(
                Code.UPSTREAM_UNAVAILABLE, "Electric broke off its answer; retry shortly"
            ) from None
        if request.transport is not None:
            request.transport.close()
        return
    if not response.prepared:
        await response.prepare(request)
    await response.write_eof(held)


def _passed_through(record: AuditRecord, status: int) -> bytearray | None:
    """Audit Electric's answer as what it is; a buffer for the start of a rejection's body."""
    record.upstream_answered(status)
    return bytearray() if record.reason == "upstream_rejected" else None


def _log_rejection(
    planned: UpstreamRequest, upstream: UpstreamResponse, kept: bytearray | None
) -> None:
    """Electric rejected what the gateway asked (a 4xx passed through): the operator's to fix."""
    if kept is None:
        return
    log.warning(
        "upstream_rejected",
        upstream=planned.upstream.name,
        shape=planned.shape,
        table=planned.table,
        upstream_status=upstream.status,
        errors=rejection_details(bytes(kept), upstream),
        check="that the rules' tables and columns exist: shape-gateway check --database URL",
    )


async def proxy(
    request: web.Request, planned: UpstreamRequest, method: str, body: bytes | None = None
) -> web.StreamResponse:
    """Send `planned` upstream and stream the answer back; raises Refusal before any byte."""
    stream = request[STREAM]
    record = request[AUDIT]
    response: web.StreamResponse | None = None
    upstream: UpstreamResponse | None = None
    try:
        upstream = await send(
            request.app[UPSTREAMS],
            planned,
            method=method,
            headers=request.headers,
            body=body,
            timeouts=request.app[TIMEOUTS],
        )
        await refuse_unless_electric_answered(upstream)
        kept = _passed_through(record, upstream.status)
        kind = web.StreamResponse if planned.sse else FiniteResponse
        response = kind(status=upstream.status, headers=client_headers(upstream.headers))
        if planned.local_ttl is not None:
            response.headers[LOCAL_TTL] = str(planned.local_ttl)
        length = upstream.headers.get(hdrs.CONTENT_LENGTH)
        if length is not None and length.isdigit():
            response.content_length = int(length)
        if planned.sse or method == hdrs.METH_HEAD:
            await response.prepare(request)  # an SSE stream's headers go before any event
        if method == hdrs.METH_HEAD:
            await response.write_eof()
        else:
            await _stream_body(request, upstream, response, planned.sse, kept)
        _log_rejection(planned, upstream, kept)
        upstream.release()
        return response
    except ConnectionResetError:
        if upstream is not None:
            upstream.close()
        if response is None or not response.prepared:
            raise  # not a write to the client: let the pipeline report it
        record.client_closed()  # the client hung up as we wrote (often the last chunk)
        return response
    except asyncio.CancelledError:
        if upstream is not None:
            upstream.close()  # never return a half-read connection to the pool
        reason = stream.stopped()
        if reason is None:
            raise  # the client went away, or the server is cancelling us
        record.stopped(reason.code.value)
        if response is None or not response.prepared:
            raise reason from None
        if planned.sse:
            await response.write_eof()  # SSE ends cleanly; the client reconnects
        elif request.transport is not None:
            request.transport.close()  # a cut body must not look complete
        return response
    except BaseException:
        if upstream is not None:
            upstream.close()
        raise
