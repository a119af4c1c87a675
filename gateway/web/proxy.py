"""Stream an upstream answer to the client as it arrives: never buffered, never re-encoded.

The answer comes through the client's member of an upstream exchange (upstream/exchange.py),
shared with every client whose rewritten request is identical (GATEWAY_COLLAPSE). What is the
client's own stays here: its response, headers (caching, Vary, CORS and the request id are
settled at prepare time), audit record and stop. Chunks are written the moment they arrive, so
snapshot chunks are never held whole and each SSE event reaches the client when Electric
flushes it. A client that goes away cancels this handler (the server runs with
handler_cancellation), or makes a write fail if it hangs up just as we write: either way it
leaves its exchange, and the last to leave closes the upstream connection at once (electric PR
#4768: an abandoned long-poll otherwise pins Electric ~20 s); the audit line says 499
`client_closed`. A stream stopped on purpose (shutdown, revocation, its token's expiry:
gateway/streams.py) answers with its reason if nothing was sent yet, or ends cleanly if it was
(web/stops.py).
A client that falls a whole buffer behind the others of its exchange is cut (499 `slow_reader`).
"""

from __future__ import annotations

import asyncio

from aiohttp import hdrs, web
from multidict import CIMultiDict

from gateway.errors import Code, Refusal
from gateway.shape.plan import UpstreamRequest
from gateway.upstream.connection import UpstreamBroken
from gateway.upstream.exchange import Dropped, Member
from gateway.upstream.headers import LOCAL_TTL
from gateway.web.keys import AUDIT, EXCHANGES
from gateway.web.stops import end_stopped


class FiniteResponse(web.StreamResponse):
    """A proxied response whose headers leave with its first body bytes: a catch-up or a
    long-poll answer is then one write (headers, body, terminator) instead of two. An SSE
    stream keeps the default: its headers go out at once, before any event."""

    _send_headers_immediately = False


async def _stream_body(
    request: web.Request, member: Member, response: web.StreamResponse, streaming: bool
) -> None:
    """Copy the body. A finite body is prepared (its headers settled) with its first chunk and
    holds back its latest chunk, so the last one leaves with the terminator: a catch-up or a
    long-poll answer is one write. If Electric breaks off before anything was sent, the client
    gets our 502 instead of a connection closed without an answer (which a client may retry
    blindly); after that, the only honest signal left is an unterminated body."""
    record = request[AUDIT]
    held = b""
    try:
        async for chunk in member.chunks():
            record.bytes += len(chunk)
            if streaming:
                await response.write(chunk)
                continue
            if not response.prepared:
                await response.prepare(request)
            elif held:
                await response.write(held)
            held = chunk
    except (UpstreamBroken, TimeoutError):
        record.upstream_aborted()  # logged once by its exchange
        if not response.prepared:
            raise Refusal(
                Code.UPSTREAM_UNAVAILABLE, "Electric broke off its answer; retry shortly"
            ) from None
        if request.transport is not None:
            request.transport.close()
        return
    except Dropped:
        return  # its connection is already cut (`cut` in proxy)
    if not response.prepared:
        await response.prepare(request)
    await response.write_eof(held)


async def _let_the_others_write() -> None:
    """This client's answer is written whole; the others of its exchange were woken by the same
    chunk. Its bookkeeping (untracking, the live slot, the audit line, metrics) waits one loop
    turn, so each of thousands of answers of one change leaves before the next client's
    bookkeeping rather than after all of it (fan-out latency, docs/performance.md). A cancel
    meanwhile (the client hung up, a revocation, shutdown) takes the usual paths below."""
    await asyncio.sleep(0)


async def proxy(
    request: web.Request, planned: UpstreamRequest, method: str, body: bytes | None = None
) -> web.StreamResponse:
    """Send `planned` upstream (or join it there) and stream the answer back; raises Refusal
    before any byte."""
    record = request[AUDIT]
    response: web.StreamResponse | None = None
    member = request.app[EXCHANGES].join(planned, method, request.headers, body)
    record.joined = member.joined

    def cut() -> None:  # fell a whole buffer behind the others: usually stuck in a write
        record.slow_reader()
        if request.transport is not None:
            request.transport.abort()  # a cut body must not look complete

    member.on_drop = cut
    try:
        head = await member.head()
        record.upstream_answered(head.status)
        kind = web.StreamResponse if planned.sse else FiniteResponse
        response = kind(status=head.status, headers=CIMultiDict(head.passed))
        if planned.local_ttl is not None:
            response.headers[LOCAL_TTL] = str(planned.local_ttl)
        length = head.headers.get(hdrs.CONTENT_LENGTH)
        if length is not None and length.isdigit():
            response.content_length = int(length)
        if planned.sse or method == hdrs.METH_HEAD:
            await response.prepare(request)  # an SSE stream's headers go before any event
        if method == hdrs.METH_HEAD:
            await response.write_eof()
        else:
            await _stream_body(request, member, response, planned.sse)
            if len(member.exchange.members) > 1:
                await _let_the_others_write()
        return response
    except ConnectionResetError:
        if response is None or not response.prepared:
            raise  # not a write to the client: let the pipeline report it
        record.client_closed()  # the client hung up as we wrote (often the last chunk)
        return response
    except asyncio.CancelledError:
        if not await end_stopped(request, response, sse=planned.sse):
            raise  # the client went away, or the server is cancelling us
        assert response is not None  # ended, not refused: it was sent
        return response
    finally:
        member.leave()  # the last to leave closes the upstream request
