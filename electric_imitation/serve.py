"""Serving a shape's log: initial sync, catch-up, `offset=now` and the live long-poll (`api.ex`).

A response covers at most one chunk. It carries `up-to-date` (message and header) only when
that chunk reaches the end of the log and the request was not `offset=-1`. A live request with
nothing to read is held until the shape grows, rotates, or `long_poll_timeout` passes; the
timeout answer is a whole body with a `Content-Length` (Electric `send_resp`s it), the others
stream chunked, flushed every `flush_items` messages or `flush_bytes` bytes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final, Literal

from aiohttp import web

from electric_imitation.call import ClientGone, ShapeCall
from electric_imitation.errors import InvalidRequestError
from electric_imitation.headers import ShapeResponse, etag_value, if_none_match, shape_headers
from electric_imitation.messages import up_to_date
from electric_imitation.offsets import NOW, LogOffset
from electric_imitation.responses import json_response
from electric_imitation.shapes import Shape
from electric_imitation.sse import stream_events

POLL_INTERVAL: Final = 0.1  # how often a held request checks that its client is still there

OUT_OF_BOUNDS: Final = {"offset": ["out of bounds for this shape"]}

Outcome = Literal["changed", "rotated", "timeout"]


@dataclass(frozen=True, slots=True)
class Position:
    """Where a request at some offset lands: the chunk it gets, whether that is the head."""

    chunk_end: LogOffset
    up_to_date: bool
    out_of_bounds: bool


def seek(shape: Shape, offset: LogOffset) -> Position:
    """`determine_log_chunk_offset/1` and `determine_up_to_date/1`."""
    last = shape.last_offset
    if last < offset:
        return Position(last, up_to_date=True, out_of_bounds=True)
    chunk_end = shape.chunk_end(offset) or last
    reaches_head = not chunk_end < max(last, offset)
    return Position(chunk_end, reaches_head and not offset.is_before_all, out_of_bounds=False)


async def serve_log(call: ShapeCall) -> web.StreamResponse:
    """Answer a (non-subset) shape request."""
    config, shape, params = call.state.config, call.shape, call.params
    meta = call.meta()
    if not params.live:
        meta.schema = call.schema()
    if params.offset == NOW:
        meta.offset, meta.up_to_date, meta.no_changes = shape.last_offset, True, True
        return await send_messages(call, meta, [up_to_date(call.state.lsn.last_lsn)])

    offset = params.offset
    position = seek(shape, offset)
    if position.out_of_bounds:
        if not config.server.waits_out_of_bounds:  # 1.0.10 refuses at once (seen)
            raise InvalidRequestError(OUT_OF_BOUNDS)
        position = await _wait_in_bounds(call, offset)
    meta.offset, meta.up_to_date = position.chunk_end, position.up_to_date
    if etag_value(meta) in if_none_match(call.request):
        meta.status = 304
        return web.Response(status=304, headers=shape_headers(config, meta))

    messages = shape.read(offset, position.chunk_end)
    if params.live and not messages:
        if params.live_sse:
            return await stream_events(call, meta)
        outcome = await hold(call, config.long_poll_timeout)
        if outcome == "rotated":
            keep_old = config.server.rotation_keeps_old_handle
            return call.refetch(shape.handle if keep_old else shape.rotated_to)
        if outcome == "timeout":
            meta.no_changes = True
            body = "[" + up_to_date(call.state.lsn.last_lsn) + "]"
            return json_response(200, body, shape_headers(config, meta))
        position = seek(shape, offset)
        meta.offset, meta.up_to_date = position.chunk_end, position.up_to_date
        messages = shape.read(offset, position.chunk_end)
    if meta.up_to_date:
        # Live responses trust the shape's own position; catch-ups take the global one too.
        lsn = position.chunk_end.tx
        if not params.live:
            lsn = max(lsn, call.state.lsn.last_lsn)
        messages.append(up_to_date(lsn))
    return await send_messages(call, meta, messages)


async def hold(call: ShapeCall, limit: float) -> Outcome:
    """Wait for the shape to grow or rotate; notice (and count) a client that gives up."""
    shape, stats = call.shape, call.state.stats
    seen = shape.last_offset
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    stats.held_requests += 1
    try:
        while True:
            if shape.removed:
                return "rotated"
            if shape.last_offset > seen:
                return "changed"
            if call.state.closing:
                return "timeout"
            if call.client_gone():
                stats.cancelled_requests += 1
                raise ClientGone
            remaining = deadline - loop.time()
            if remaining <= 0:
                return "timeout"
            await asyncio.wait({shape.signal.waiter()}, timeout=min(remaining, POLL_INTERVAL))
    except asyncio.CancelledError:
        # aiohttp cancels the handler when its client disconnects (handler_cancellation=True).
        if call.client_gone():
            stats.cancelled_requests += 1
        raise
    finally:
        stats.held_requests -= 1


async def send_messages(
    call: ShapeCall, meta: ShapeResponse, messages: list[str]
) -> web.StreamResponse:
    """Stream a 200 message array (SSE events when live_sse), chunked like Electric's encoder."""
    config = call.state.config
    response = web.StreamResponse(status=200, headers=shape_headers(config, meta))
    body = call.open_body(response)
    await body.start()
    if meta.live and meta.sse:
        for message in messages:
            await body.write(f"data: {message}\n\n")
    else:
        pending: list[str] = ["["]
        size = 1
        for index, message in enumerate(messages):
            pending.append(message if index == 0 else "," + message)
            size += len(message) + 1
            if len(pending) >= config.flush_items or size >= config.flush_bytes:
                await body.write("".join(pending))
                pending, size = [], 0
        pending.append("]")
        await body.write("".join(pending))
    await body.finish()
    return response


async def _wait_in_bounds(call: ShapeCall, offset: LogOffset) -> Position:
    # A client slightly ahead (restart, handover) gets half a long-poll to be caught up with.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + call.state.config.long_poll_timeout / 2
    while call.shape.last_offset < offset:
        remaining = deadline - loop.time()
        if remaining <= 0 or call.shape.removed:
            raise InvalidRequestError(OUT_OF_BOUNDS)
        await asyncio.wait({call.shape.signal.waiter()}, timeout=min(remaining, POLL_INTERVAL))
    return seek(call.shape, offset)
