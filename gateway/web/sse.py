"""GET /v1/events over HTTP: the feed's stream response, `Last-Event-ID`, and the loop that
writes a feed's replay, heartbeats and live events (what it writes: revocation/feed.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import hdrs, web

from gateway.errors import Code, Refusal
from gateway.revocation.events import RevocationEvent, stream_id_key
from gateway.revocation.feed import FeedHub, Subscriber, encode, replay_end
from gateway.streams import OpenStream
from gateway.web.stops import end_stopped


def last_event_id(request: web.Request) -> str | None:
    """The `Last-Event-ID` header (or `last_event_id` query parameter, for EventSource
    polyfills that cannot set headers); a malformed one is refused, not silently ignored."""
    values = request.headers.getall("Last-Event-ID", []) + request.query.getall("last_event_id", [])
    if not values:
        return None
    if len(values) > 1:
        raise Refusal(Code.DUPLICATE_PARAMETER, "send Last-Event-ID once")
    try:
        stream_id_key(values[0])
    except ValueError:
        raise Refusal(
            Code.INVALID_PARAMETER,
            "Last-Event-ID must be the id of an event this feed sent, like 1700000000000-0",
        ) from None
    return values[0]


class FeedResponse(web.StreamResponse):
    """The event stream, counting the body bytes it writes (the audit line's `bytes`)."""

    def __init__(self, *, headers: dict[str, str]) -> None:
        super().__init__(headers=headers)
        self.sent = 0

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += len(data)
        await super().write(data)


def feed_response() -> FeedResponse:
    return FeedResponse(
        headers={
            hdrs.CONTENT_TYPE: "text/event-stream",
            hdrs.CACHE_CONTROL: "no-store",
            "X-Accel-Buffering": "no",  # nginx: never buffer this stream
        }
    )


async def stream_events(
    request: web.Request,
    response: web.StreamResponse,
    stream: OpenStream,
    hub: FeedHub,
    history: Callable[[], list[RevocationEvent]],
) -> None:
    """Subscribe, take the history to replay (no await between: no gap), then stream the
    replay, its end (`replay_end`) and live events into `response`; an event in both is sent
    once. A stopped feed writes what was queued for it, then ends (web/stops.py)."""
    subscriber = Subscriber(stream.identity)
    hub.subscribers.add(subscriber)
    missed = history()
    sent: set[str] = set()

    async def send(event: RevocationEvent) -> None:
        if event.id not in sent:
            sent.add(event.id)
            await response.write(encode(event))

    try:
        try:
            await response.prepare(request)
            await response.write(b": connected\n\n")
            for event in missed:
                await send(event)
            await response.write(replay_end(len(missed)))
            while True:
                try:
                    async with asyncio.timeout(hub.heartbeat):
                        item = await subscriber.queue.get()
                except TimeoutError:
                    await response.write(b": heartbeat\n\n")
                    continue
                if item is None:
                    break
                await send(item)
        except asyncio.CancelledError:
            hub.subscribers.discard(subscriber)  # nothing more queued while the rest is written

            async def write_queued() -> None:
                while not subscriber.queue.empty():
                    queued = subscriber.queue.get_nowait()
                    if queued is not None:
                        await send(queued)

            if not await end_stopped(request, response, sse=True, before_end=write_queued):
                raise  # the client went away, or the server is cancelling us
            return
        await response.write_eof()
    finally:
        hub.subscribers.discard(subscriber)
