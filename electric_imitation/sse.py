"""The live SSE stream (`stream_sse_events/1`): changes as `data:` events until it times out.

Headers go out at once; then each batch of changes is sent as one event per message followed
by an `up-to-date` carrying the batch's LSN (the client moves its offset from that, since
headers cannot change mid-stream). A `: keep-alive` comment fills silences of
`sse_keepalive`; the stream ends after `sse_timeout` or, silently, when the shape rotates.
"""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import web

from electric_imitation.call import ClientGone, ShapeCall
from electric_imitation.headers import ShapeResponse, shape_headers
from electric_imitation.messages import up_to_date
from electric_imitation.offsets import LogOffset
from electric_imitation.responses import BodyStream

KEEP_ALIVE: Final = ": keep-alive\n\n"
_POLL_INTERVAL: Final = 0.1


async def stream_events(call: ShapeCall, meta: ShapeResponse) -> web.StreamResponse:
    """Hold an SSE stream open on the shape, writing each event the moment it exists."""
    stats = call.state.stats
    response = web.StreamResponse(status=200, headers=shape_headers(call.state.config, meta))
    body = call.open_body(response)
    stats.held_requests += 1
    try:
        await body.start()
        await _pump(call, body)
        await body.finish()
    except (ClientGone, ConnectionError):
        stats.cancelled_requests += 1
        raise ClientGone from None
    except asyncio.CancelledError:
        # aiohttp cancels the handler when its client disconnects (handler_cancellation=True).
        if call.client_gone():
            stats.cancelled_requests += 1
        raise
    finally:
        stats.held_requests -= 1
    return response


async def _pump(call: ShapeCall, body: BodyStream) -> None:
    """Send batches and keep-alives until the deadline or rotation; ClientGone if they hang up."""
    config, shape = call.state.config, call.shape
    since = shape.last_offset  # we only get here when nothing follows the request's offset
    loop = asyncio.get_running_loop()
    deadline = loop.time() + config.sse_timeout
    last_sent = loop.time()
    while not (shape.removed or call.state.closing):
        if shape.last_offset > since:
            since = await _send_batch(call, body, since)
            last_sent = loop.time()
            continue
        if call.client_gone():
            raise ClientGone
        now = loop.time()
        if now >= deadline:
            return
        if now - last_sent >= config.sse_keepalive:
            await body.write(KEEP_ALIVE)
            last_sent = now
            continue
        wait = min(deadline - now, last_sent + config.sse_keepalive - now, _POLL_INTERVAL)
        await asyncio.wait({shape.signal.waiter()}, timeout=max(wait, 0.0))


async def _send_batch(call: ShapeCall, body: BodyStream, since: LogOffset) -> LogOffset:
    """Every message after `since`, then up-to-date; returns the new position."""
    shape = call.shape
    end = since
    while end < shape.last_offset:
        chunk_end = shape.chunk_end(end) or shape.last_offset
        for message in shape.read(end, chunk_end):
            await body.write(f"data: {message}\n\n")
        end = chunk_end
    await body.write(f"data: {up_to_date(end.tx)}\n\n")
    return end
