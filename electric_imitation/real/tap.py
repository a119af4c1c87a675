"""A recording pass-through in front of a real Electric, with the imitation's test hooks.

The functional and real-client tests ask "what did Electric receive?", "is a long-poll held
there now?", "make this shape's handle stale": questions the imitation answers from its state.
In front of a real server the tap answers them instead, from what passes through it:

- every `/v1/shape` request is recorded as sent (`RecordedRequest`, duplicates kept);
- a live request counts as held until its answer has been read through, and as cancelled if
  the client hangs up first (the tap then abandons its own upstream request, as a proxy must);
- `rotate()` deletes the shape with Electric's `DELETE /v1/shape` (the server needs
  `ELECTRIC_ENABLE_INTEGRATION_TESTING=true`), so the next request with its handle gets 409;
- the tests' own Electric secret is swapped for the real one on the way through.

The same hooks are served over HTTP at `/_control/requests|stats|rotate` for the Node tests.
Fault injection has no real counterpart: those tests are marked `imitation_only`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from aiohttp import hdrs, web
from yarl import URL

from electric_imitation.recorder import RecordedRequest, RequestRecorder
from electric_imitation.shape_cache import Rotation
from electric_imitation.state import Stats
from electric_imitation.tasks import OwnedTasks

_HOP_BY_HOP: Final = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host",
     "content-length"}
)  # fmt: skip


class TapState:
    """Recorder, counters and hooks of one tap; the subset of `ElectricState` tests use."""

    def __init__(self, upstream: URL, secret: str | None, test_secret: str | None) -> None:
        self.upstream = upstream
        self.secret = secret
        self.test_secret = test_secret
        self.recorder = RequestRecorder()
        self.stats = Stats()
        self.tasks = OwnedTasks()
        self.session: aiohttp.ClientSession | None = None
        self.handles: dict[str, list[tuple[str, str]]] = {}  # handle -> query that got it

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.recorder.requests

    def clear_requests(self) -> None:
        self.recorder.clear()

    def inject(self, fault: object) -> None:
        raise NotImplementedError(f"a real Electric cannot be told to fail ({fault})")

    async def wait_for(self, condition: Callable[[Stats], bool], within: float = 5.0) -> None:
        async with asyncio.timeout(within):
            while not condition(self.stats):  # noqa: ASYNC110 - counters change in many places
                await asyncio.sleep(0.01)

    async def rotate(
        self, *, handle: str | None = None, table: str | None = None
    ) -> list[Rotation]:
        """Delete the shape(s) in Electric, then ask for each definition again: a new handle."""
        assert self.session is not None
        victims = [
            (old, query)
            for old, query in self.handles.items()
            if old == handle or (table is not None and _param(query, "table") == table)
        ]
        rotations: list[Rotation] = []
        for old, query in victims:
            url = self.upstream.with_path("/v1/shape").with_query(
                self._with_secret([("handle", old)])
            )
            async with self.session.delete(url) as answer:
                if answer.status not in (200, 202, 204):
                    raise RuntimeError(
                        f"Electric refused to delete shape {old} ({answer.status}): set "
                        "ELECTRIC_ENABLE_INTEGRATION_TESTING=true on it to run rotation tests"
                    )
            del self.handles[old]
            rotations.append(Rotation(old, await self._current_handle(query)))
        return rotations

    async def _current_handle(self, query: list[tuple[str, str]]) -> str:
        """The handle Electric now gives the definition `query` asked for."""
        assert self.session is not None
        definition = [(k, v) for k, v in query if k not in _POSITION_PARAMS]
        url = self.upstream.with_path("/v1/shape").with_query(
            self._with_secret([*definition, ("offset", "-1")])
        )
        async with self.session.head(url) as answer:
            return answer.headers.get("electric-handle", "")

    def upstream_query(self, query: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """`query` as Electric must get it: the tests' secret swapped for the real one."""
        real = self.secret
        return [
            (key, real if real and _is_secret(key) and value == self.test_secret else value)
            for key, value in query
        ]

    def _with_secret(self, query: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """A query of the tap's own (not a test's), with the real secret if there is one."""
        plain = [(key, value) for key, value in query if not _is_secret(key)]
        return [*plain, ("secret", self.secret)] if self.secret else plain


def _param(query: list[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in reversed(query) if key == name), None)


def _is_secret(key: str) -> bool:
    return key in ("secret", "api_secret")


TAP = web.AppKey("tap", TapState)
# What places a request in a shape's log rather than naming the shape.
_POSITION_PARAMS: Final = frozenset(
    {"offset", "handle", "live", "cursor", "live_sse", "experimental_live_sse", "expired_handle",
     "cache-buster"}
)  # fmt: skip


async def _forward(request: web.Request) -> web.StreamResponse:
    state = request.app[TAP]
    if request.path.startswith("/_control/"):
        return await _control(request, state)
    record = state.recorder.record(request)
    live = record.param("live") not in (None, "false")
    state.stats.active_requests += 1
    state.stats.held_requests += live
    try:
        response = await _proxy(request, state, record)
    except asyncio.CancelledError:
        state.stats.cancelled_requests += live
        raise
    finally:
        state.stats.active_requests -= 1
        state.stats.held_requests -= live
    record.status = response.status
    return response


async def _proxy(
    request: web.Request, state: TapState, record: RecordedRequest
) -> web.StreamResponse:
    assert state.session is not None
    query = state.upstream_query(record.query)
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
    body = await request.read() if request.can_read_body else None
    url = state.upstream.with_path(request.path).with_query(query)
    async with state.session.request(
        request.method, url, headers=headers, data=body, allow_redirects=False
    ) as upstream:
        response = web.StreamResponse(status=upstream.status)
        for name, value in upstream.headers.items():
            if name.lower() not in _HOP_BY_HOP:
                response.headers.add(name, value)
        if "electric-handle" in upstream.headers and record.param("table"):
            state.handles[upstream.headers["electric-handle"]] = record.query
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


async def _control(request: web.Request, state: TapState) -> web.Response:
    route = (request.method, request.path.removeprefix("/_control/"))
    if route == (hdrs.METH_GET, "requests"):
        return web.json_response([entry.to_json() for entry in state.requests])
    if route == (hdrs.METH_DELETE, "requests"):
        state.clear_requests()
        return web.Response(status=204)
    if route == (hdrs.METH_GET, "stats"):
        return web.json_response({**dataclasses.asdict(state.stats), "shapes": None})
    if route == (hdrs.METH_POST, "rotate"):
        body: Any = await request.json()
        rotations = await state.rotate(handle=body.get("handle"), table=body.get("table"))
        if not rotations:
            return web.json_response({"message": "no shape matched"}, status=404)
        return web.json_response({"rotated": [dataclasses.asdict(r) for r in rotations]})
    return web.json_response({"message": "a real Electric has no such hook"}, status=501)


@dataclass
class Tap:
    """A running tap: its URL (give it to the gateway) and its hooks."""

    url: URL
    state: TapState
    runner: web.AppRunner


@contextlib.asynccontextmanager
async def start_tap(
    upstream: str, secret: str | None, test_secret: str | None
) -> AsyncIterator[Tap]:
    """A tap on 127.0.0.1 (a free port) in front of `upstream`, for the block's duration."""
    state = TapState(URL(upstream), secret, test_secret)
    app = web.Application()
    app[TAP] = state

    async def session(_app: web.Application) -> AsyncIterator[None]:
        # No total timeout: held polls (20 s) and SSE streams (60 s) pass through untouched;
        # `auto_decompress=False`: bytes reach the gateway exactly as Electric sent them.
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None), auto_decompress=False
        ) as client:
            state.session = client
            yield
        await state.tasks.cancel_all()

    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/{path:.*}", _forward)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield Tap(URL(f"http://{host}:{port}"), state, runner)
    finally:
        await runner.cleanup()
