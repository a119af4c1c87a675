"""Response compression the way Electric's HTTP server (Bandit) does it, per version.

Electric itself never compresses; Bandit does, from `Accept-Encoding` (`Bandit.Compression`):

- a response carrying an `etag` is never compressed (Bandit skips "strong" ETags, and its test
  for weak ones never matches), so shape logs, 409s and live answers go out as they are: the
  "shape bodies are not gzipped" seen on 1.0.10;
- anything else with a body is, errors first among them, with `vary: accept-encoding`;
- Bandit 1.5.5 (Electric 1.0.10) compresses only whole bodies, takes the first coding in the
  *client's* list among deflate/gzip/x-gzip, and adds the `vary` only to whole bodies;
- Bandit 1.12 (Electric 1.7) compresses streams too, prefers gzip, x-gzip, then deflate, and
  adds the `vary` to every response but a 204. (zstd, offered first when the Erlang runtime has
  it, is left out: the imitation cannot know whether the real runtime does.)

Bandit matches codings as whole list items, so `gzip;q=1` is not gzip to it.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import hdrs, web

from electric_imitation.state import ELECTRIC
from electric_imitation.versions import ServerVersion

_OLD_CODINGS: Final = ("deflate", "gzip", "x-gzip")
_NEW_CODINGS: Final = ("gzip", "x-gzip", "deflate")
VARY: Final = "accept-encoding"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def negotiate(request: web.BaseRequest, server: ServerVersion, *, enabled: bool) -> str | None:
    """The coding Bandit would pick for this request, or None."""
    if not enabled:
        return None
    offered = [item.strip() for item in request.headers.get(hdrs.ACCEPT_ENCODING, "").split(",")]
    if not server.compresses_streams:  # Bandit 1.5.5: the client's order
        return next((item for item in offered if item in _OLD_CODINGS), None)
    return next((coding for coding in _NEW_CODINGS if coding in offered), None)


def compressible(response: web.StreamResponse) -> bool:
    """Whether Bandit compresses this response at all, judging by its status and headers."""
    headers = response.headers
    cache_control = headers.get(hdrs.CACHE_CONTROL, "")
    return (
        response.status not in (204, 304)
        and hdrs.ETAG not in headers
        and hdrs.CONTENT_ENCODING not in headers
        and "no-transform" not in [part.strip() for part in cache_control.split(",")]
    )


def add_vary(response: web.StreamResponse, server: ServerVersion, *, streamed: bool) -> None:
    """Bandit's `vary: accept-encoding` (1.5.5: whole bodies only; 1.12: all but 204)."""
    if streamed and not server.compresses_streams:
        return
    if response.status == 204 and server.compresses_streams:
        return
    response.headers.add(hdrs.VARY, VARY)


def compressor(coding: str) -> zlib._Compress:
    """A zlib stream producing `coding` (gzip framing, or zlib framing for deflate)."""
    return zlib.compressobj(wbits=15 if coding == "deflate" else 31)


@web.middleware
async def compress_whole_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Compress whole (content-length) responses the handler returns, as Bandit's `send_resp`."""
    response = await handler(request)
    if not isinstance(response, web.Response) or response.prepared:
        return response  # streamed: `responses.BodyStream` compressed it as it went
    if request.path.startswith("/_control"):
        return response  # the test hooks are not Electric
    state = request.app[ELECTRIC]
    server = state.config.server
    add_vary(response, server, streamed=False)
    body = response.body
    coding = negotiate(request, server, enabled=state.config.gzip)
    if coding is None or not isinstance(body, bytes) or not body:
        return response
    if not compressible(response):
        return response
    packer = compressor(coding)
    response.body = packer.compress(body) + packer.flush()
    response.headers[hdrs.CONTENT_ENCODING] = coding
    return response
