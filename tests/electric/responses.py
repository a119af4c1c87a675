"""Writing responses: whole JSON bodies for errors, streamed chunked bodies for shape logs.

Streamed bodies are flushed per write (SSE must never sit in a buffer), gzip-compressed with a
sync flush per write when the client accepts gzip, and can be cut short by an `abort` fault.
"""

from __future__ import annotations

import zlib
from typing import Any

from aiohttp import hdrs, web

from tests.electric.config import ElectricConfig
from tests.electric.errors import ElectricError, InvalidRequestError, MustRefetchError, ServiceError
from tests.electric.headers import JSON_TYPE, ShapeResponse, shape_headers
from tests.electric.messages import MUST_REFETCH, encode


class ResponseAborted(Exception):  # noqa: N818 - a signal, not a failure
    """The connection was cut on purpose (abort fault); the handler must stop at once."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__("response aborted by fault injection")
        self.response = response


def accepts_gzip(request: web.BaseRequest) -> bool:
    """True when Accept-Encoding lists gzip (or x-gzip) without q=0."""
    for item in request.headers.get(hdrs.ACCEPT_ENCODING, "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip", "*"):
            quality = params.strip().lower().removeprefix("q=")
            if not params.strip() or _quality(quality) > 0:
                return True
    return False


def json_response(status: int, body: object, headers: dict[str, str] | None = None) -> web.Response:
    """A whole (content-length) JSON response; `body` may be pre-encoded."""
    text = body if isinstance(body, str) else encode(body)
    response = web.Response(status=status, body=text.encode(), headers=headers or {})
    response.headers[hdrs.CONTENT_TYPE] = JSON_TYPE
    return response


def error_response(
    config: ElectricConfig, error: ElectricError, meta: ShapeResponse
) -> web.Response:
    """Render a refusal with the headers Electric puts on it (`Response.error/3`)."""
    if isinstance(error, InvalidRequestError):
        meta.status = 400
        body: Any = {"message": "Invalid request", "errors": _sorted_errors(error.errors)}
    elif isinstance(error, MustRefetchError):
        meta.status = 409
        meta.handle = error.handle
        body = MUST_REFETCH
    elif isinstance(error, ServiceError):
        meta.status = error.status
        meta.retry_after = error.retry_after
        meta.known_error = error.known_error
        body = error.body
    else:
        raise TypeError(f"unknown error type {type(error).__name__}")
    meta.up_to_date = False
    return json_response(meta.status, body, shape_headers(config, meta))


class BodyStream:
    """A chunked 200 body: each `write` reaches the socket before it returns."""

    def __init__(
        self,
        request: web.BaseRequest,
        response: web.StreamResponse,
        *,
        gzip: bool,
        abort_after: int | None = None,
    ) -> None:
        self._request = request
        self._response = response
        self._compressor = zlib.compressobj(wbits=31) if gzip else None
        self._abort_after = abort_after
        self._written = 0
        self._head_only = request.method == hdrs.METH_HEAD

    async def start(self) -> None:
        if self._compressor is not None:
            self._response.headers[hdrs.CONTENT_ENCODING] = "gzip"
            self._response.headers[hdrs.VARY] = hdrs.ACCEPT_ENCODING.lower()
        self._response.enable_chunked_encoding()
        await self._response.prepare(self._request)

    async def write(self, text: str) -> None:
        if self._head_only or not text:
            return
        data = text.encode()
        if self._abort_after is not None and self._written + len(data) >= self._abort_after:
            await self._send(data[: self._abort_after - self._written])
            transport = self._request.transport
            if transport is not None:
                transport.close()
            raise ResponseAborted(self._response)
        self._written += len(data)
        await self._send(data)

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


def _quality(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return 0.0


def _sorted_errors(errors: dict[str, Any]) -> dict[str, Any]:
    return {
        key: _sorted_errors(value) if isinstance(value, dict) else value
        for key, value in sorted(errors.items())
    }
