"""One HTTP/1.1 connection to Electric: send a request, stream the response back.

The upstream leg is most of a proxied request's cost, and aiohttp's general-purpose client
spends about as much CPU per request as the rest of the gateway's own work. The gateway needs
a narrow slice of HTTP: one request at a time on a kept-alive connection, bodies passed through
as bytes (never decompressed), framing read by llhttp (through httptools, the parser uvloop's
authors maintain). So this is that slice, on an asyncio protocol:

- the body arrives as chunks the consumer pulls; past HIGH_WATER unread bytes the socket stops
  being read (a slow client slows Electric's send, never the gateway's memory);
- `read_timeout` bounds the wait for each piece (headers, then every chunk): a silent Electric
  is a TimeoutError, never a hang;
- a HEAD answer ends with its headers, and its connection is not reused (its framing headers
  describe a body that never comes).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Final

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

HIGH_WATER: Final = 256 * 1024
LOW_WATER: Final = 64 * 1024


class UpstreamBroken(Exception):  # noqa: N818 - a condition of the link, like ConnectionError
    """The connection failed or closed before the response was complete."""


class Connection(asyncio.Protocol):
    def __init__(self, key: tuple[str, str, int]) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.reused = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[str, str]] = []
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._complete = False
        self._keep_alive = False
        self._head = False
        self._failure: BaseException | None = None
        self._got_bytes = False
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timeout = 0.0
        self.status = 0
        self.headers: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())

    # -- asyncio protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(UpstreamBroken(f"unparsable answer from upstream: {error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self._complete:
            self._fail(UpstreamBroken(f"upstream closed the connection: {exc or 'EOF'}"))

    def eof_received(self) -> bool | None:
        return None  # close our side too

    # -- httptools callbacks ---------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.headers = CIMultiDictProxy(CIMultiDict(self._headers))
        if self._head:
            self._complete = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self._complete = True
        self._keep_alive = self._parser.should_keep_alive()  # only meaningful right now
        self._wake()

    # -- the request -----------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        return (
            self._complete
            and not self._head
            and self._failure is None
            and self.transport is not None
            and not self.transport.is_closing()
            and self._keep_alive
        )

    @property
    def answered_nothing(self) -> bool:
        """A kept-alive connection the upstream closed before answering: safe to retry."""
        return self.reused and not self._got_bytes

    async def start(self, request: bytes, *, head: bool, read_timeout: float) -> None:
        """Send `request`; return once the status and headers are in."""
        assert self.transport is not None
        self._reset(head, read_timeout)
        self.transport.write(request)
        while not self.status and self._failure is None:
            await self._wait()
        if self._failure is not None:
            raise self._failure

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; UpstreamBroken or TimeoutError if it is cut or stalls."""
        while True:
            while self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered < LOW_WATER and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                yield chunk
            if self._complete:
                return
            if self._failure is not None:
                raise self._failure
            await self._wait()

    async def read(self, limit: int) -> bytes:
        """Up to `limit` bytes of the body (for logging an error's text)."""
        out = bytearray()
        async for chunk in self.chunks():
            out += chunk
            if len(out) >= limit:
                break
        return bytes(out[:limit])

    def close(self) -> None:
        self._cancel_timer()
        if self.transport is not None:
            self.transport.abort()  # mid-body: never let it look like a clean end

    # -- internals -------------------------------------------------------------------------

    def _reset(self, head: bool, timeout: float) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._headers.clear()
        self._chunks.clear()
        self._buffered = 0
        self._complete = self._got_bytes = self._keep_alive = False
        self._failure = None
        self._head = head
        self._timeout = timeout
        self.status = 0

    def _fail(self, error: BaseException) -> None:
        if self._failure is None:
            self._failure = error
        if self.transport is not None:
            self.transport.abort()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._timer = loop.call_later(self._timeout, self._time_out)
        try:
            await self._waiter
        finally:
            self._waiter = None
            self._cancel_timer()

    def _time_out(self) -> None:
        self._timer = None
        self._fail(TimeoutError(f"upstream sent nothing for {self._timeout:g} s"))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
