"""Writing responses: whole JSON bodies for errors, streamed chunked bodies for shape logs.

Streamed bodies are flushed per write (SSE must never sit in a buffer), compressed with a sync
flush per write when Bandit would compress them (`compression`), and can be cut short by an
`abort` fault. Whole bodies are compressed on their way out by `compression`'s middleware.
"""

from __future__ import annotations

import zlib
from typing import Any

from aiohttp import hdrs, web

from electric_imitation.compression import add_vary, compressible, compressor, negotiate
from electric_imitation.config import ElectricConfig
from electric_imitation.errors import (
    ElectricError,
    InvalidRequestError,
    MustRefetchError,
    ServiceError,
)
from electric_imitation.headers import JSON_TYPE, PLUG_DEFAULT_CACHE, ShapeResponse, shape_headers
from electric_imitation.messages import MUST_REFETCH, encode


class ResponseAborted(Exception):  # noqa: N818 - a signal, not a failure
    """The connection was cut on purpose (abort fault); the handler must stop at once."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__("response aborted by fault injection")
        self.response = response


def json_response(status: int, body: object, headers: dict[str, str] | None = None) -> web.Response:
    """A whole (content-length) JSON response; `body` may be pre-encoded."""
    text = body if isinstance(body, str) else encode(body)
    response = web.Response(status=status, body=text.encode(), headers=headers or {})
    response.headers[hdrs.CONTENT_TYPE] = JSON_TYPE
    return response


def error_response(
    config: ElectricConfig, error: ElectricError, meta: ShapeResponse
) -> web.Response:
    """Render a refusal with the headers Electric puts on it (`Response.error/3`).

    A 409 names `error.handle` and carries Electric's ETag form `"<handle>::"` (the error
    response knows no offsets); 1.0.10 adds a `location` at `offset=-1` (`location_for`).
    """
    meta.up_to_date = False
    meta.offset = None
    if isinstance(error, InvalidRequestError):
        meta.status = 400
        body: Any = {"message": "Invalid request", "errors": _sorted_errors(error.errors)}
    elif isinstance(error, MustRefetchError):
        meta.status = 409
        meta.handle = error.handle
        meta.request_offset = None
        meta.live = False
        meta.location = error.location if config.server.location_on_409 else None
        body = MUST_REFETCH
    elif isinstance(error, ServiceError):
        meta.status = error.status
        meta.retry_after = error.retry_after
        meta.known_error = error.known_error
        body = error.body
    else:
        raise TypeError(f"unknown error type {type(error).__name__}")
    if meta.status != 409:
        meta.handle = None  # `Response.error/3` only names a handle when told to
    return json_response(meta.status, body, shape_headers(config, meta))


def crash_response(config: ElectricConfig, exception: str) -> web.Response:
    """Electric's crash handler (`Plug.ErrorHandler`): Plug's default cache-control, no shape
    headers; 1.0.10 shows the formatted exception, later versions a fixed sentence."""
    detail = exception if config.server.crash_body_detail else "Internal server error"
    return json_response(500, {"error": detail}, {hdrs.CACHE_CONTROL: PLUG_DEFAULT_CACHE})


class BodyStream:
    """A chunked 200 body: each `write` reaches the socket before it returns."""

    def __init__(
        self,
        request: web.BaseRequest,
        response: web.StreamResponse,
        config: ElectricConfig,
        *,
        abort_after: int | None = None,
    ) -> None:
        self._request = request
        self._response = response
        self._server = config.server
        coding = negotiate(request, self._server, enabled=config.gzip)
        streams = self._server.compresses_streams and compressible(response)
        self._coding = coding if streams else None
        self._compressor = compressor(coding) if coding and streams else None
        self._abort_after = abort_after
        self._written = 0
        self._head_only = request.method == hdrs.METH_HEAD

    async def start(self) -> None:
        add_vary(self._response, self._server, streamed=True)
        if self._coding is not None:
            self._response.headers[hdrs.CONTENT_ENCODING] = self._coding
        self._response.enable_chunked_encoding()
        await self._response.prepare(self._request)

    async def write(self, text: str) -> None:
        if self._head_only or not text:
            return
        data = text.encode()
        if self._abort_after is not None and self._written + len(data) >= self._abort_after:
            await self._send(data[: self._abort_after - self._written])
            self.cut()
            raise ResponseAborted(self._response)
        self._written += len(data)
        await self._send(data)

    def cut(self) -> None:
        """Close the connection mid-body: the client sees a response that never ends."""
        transport = self._request.transport
        if transport is not None:
            transport.close()

    async def finish(self) -> None:
        if self._compressor is not None and not self._head_only:
            tail = self._compressor.flush()
            if tail:
                await self._response.write(tail)
        await self._response.write_eof()

    async def _send(self, data: bytes) -> None:
        if self._compressor is not None:
            data = self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        if data:
            # StreamResponse hands each write straight to the transport: nothing is buffered.
            await self._response.write(data)


def _sorted_errors(errors: dict[str, Any]) -> dict[str, Any]:
    return {
        key: _sorted_errors(value) if isinstance(value, dict) else value
        for key, value in sorted(errors.items())
    }
