"""A held stream stopped on purpose (shutdown, revocation, its token's expiry: gateway/streams.py),
answered the same way wherever it is held: the shape proxy, the event feed, or the admission
stage around a route that does not answer it itself.

The stop cancels the request's task; its holder sees `CancelledError`, asks `end_stopped`, and
re-raises when the cancellation is not a stop (the client left, the server is cancelling).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.web.keys import AUDIT, STREAM


async def end_stopped(
    request: web.Request,
    response: web.StreamResponse | None,
    *,
    sse: bool = False,
    before_end: Callable[[], Awaitable[None]] | None = None,
) -> bool:
    """Call on `CancelledError`. False when it is not this stream's stop: the caller re-raises
    it. A stop (its cancellation withdrawn) is put on the audit line, then answered: with its
    reason, a Refusal raised here, if nothing was sent yet; else the stream ends cleanly: an SSE
    stream with its end, after `before_end` (the feed's queued events), so the client
    reconnects; a finite body by closing the connection, so a cut body never looks complete."""
    reason = request[STREAM].stopped()
    if reason is None:
        return False
    request[AUDIT].stopped(reason.code.value)
    if response is None or not response.prepared:
        raise reason from None
    if sse:
        if before_end is not None:
            await before_end()
        await response.write_eof()
    elif request.transport is not None:
        request.transport.close()
    return True
