"""A held stream stopped on purpose is answered one way wherever it is held (web/stops.py):
refused with its reason before anything was sent, an SSE stream ended cleanly after what was
queued, a finite body cut so it never looks complete; any other cancellation is not a stop."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.audit.records import AuditRecord
from gateway.errors import Code, Refusal
from gateway.streams import OpenStreams
from gateway.web.keys import AUDIT, STREAM
from gateway.web.stops import end_stopped
from tests.factories import make_identity

REVOKED = Refusal(Code.ACCESS_REVOKED, "revoked")


class Held:
    """A route holding its request as a stream, stopped (or cancelled) from outside."""

    def __init__(self, *, sse: bool, prepare: bool) -> None:
        self.sse, self.prepare = sse, prepare
        self.streams = OpenStreams()
        self.holding = asyncio.Event()
        self.records: list[AuditRecord] = []
        self.answers: list[object] = []
        self.task: asyncio.Task[object] | None = None

    async def route(self, request: web.Request) -> web.StreamResponse:
        request[AUDIT] = record = AuditRecord("r1", request.method, request.path)
        self.records.append(record)
        response = web.StreamResponse()
        with self.streams.track(make_identity(), live=True) as stream:
            request[STREAM] = stream
            try:
                if self.prepare:
                    await response.prepare(request)
                    await response.write(b"first\n")
                self.task = asyncio.current_task()
                self.holding.set()
                await asyncio.Event().wait()
            except asyncio.CancelledError:

                async def queued() -> None:
                    await response.write(b"queued\n")

                try:
                    ended = await end_stopped(request, response, sse=self.sse, before_end=queued)
                except Refusal as refusal:
                    self.answers.append(refusal)
                    return web.Response(status=refusal.status, text=refusal.code.value)
                self.answers.append(ended)
                if not ended:
                    raise
        return response


async def stop_when_held(held: Held, stop: bool) -> None:
    await held.holding.wait()
    if stop:
        held.streams.stop_where(lambda s: True, REVOKED)
    else:
        assert held.task is not None
        held.task.cancel()  # as when the client leaves, or the server cancels it


async def run(held: Held, stop: bool) -> tuple[int, bytes | Exception]:
    app = web.Application()
    app.router.add_get("/", held.route)
    async with (
        TestServer(app) as server,
        aiohttp.ClientSession() as session,
        asyncio.TaskGroup() as group,
    ):
        group.create_task(stop_when_held(held, stop))
        async with session.get(server.make_url("/")) as answer:
            try:
                return answer.status, await answer.read()
            except aiohttp.ClientPayloadError as cut:
                return answer.status, cut


async def test_a_stop_before_anything_was_sent_is_answered_with_its_reason() -> None:
    held = Held(sse=False, prepare=False)
    assert await run(held, stop=True) == (REVOKED.status, b"access_revoked")
    assert held.answers == [REVOKED]
    assert held.records[0].stopped_by == "access_revoked"


async def test_a_stopped_sse_stream_writes_what_was_queued_then_ends_cleanly() -> None:
    held = Held(sse=True, prepare=True)
    assert await run(held, stop=True) == (200, b"first\nqueued\n")
    assert held.answers == [True]
    assert held.records[0].stopped_by == "access_revoked"


async def test_a_stopped_finite_body_is_cut_so_it_never_looks_complete() -> None:
    held = Held(sse=False, prepare=True)
    status, body = await run(held, stop=True)
    assert status == 200
    assert isinstance(body, aiohttp.ClientPayloadError)
    assert held.answers == [True]


async def test_a_cancellation_that_is_no_stop_is_left_to_propagate() -> None:
    held = Held(sse=True, prepare=True)
    _, body = await run(held, stop=False)
    assert isinstance(body, aiohttp.ClientPayloadError)  # not ended as a stop ends it
    assert held.answers == [False]
    assert held.records[0].stopped_by is None
