"""Request bodies: read whole (they arrive in pieces), bounded in size and in time, parsed as
JSON, or refused.

A body must keep arriving: each piece within GATEWAY_HEADER_TIMEOUT of the one before (or of
the headers), and the body as a whole at MIN_BODY_RATE bytes a second on average once that
first grace has passed. A declared `Content-Length` buys no time: a client that declares 2 MB
and sends nothing is refused (408) after the header timeout, and one that trickles a byte at a
time falls behind the rate; either way it cannot hold a connection (and its descriptor) for
long. The 408 closes the connection (web/middleware/refusals.py). JSON nested deeper than Python's
recursion limit is refused, not a crash.
"""

from __future__ import annotations

import asyncio
import json
from typing import Final

from aiohttp import web

from gateway.errors import Code, Refusal
from gateway.web.keys import SETTINGS

CHUNK: Final = 64 * 1024
MIN_BODY_RATE: Final = 1024  # bytes per second


async def _read(request: web.Request, limit: int) -> bytes:
    too_large = Refusal(Code.INVALID_PARAMETER, f"the body must be at most {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    grace = request.app[SETTINGS].header_timeout
    loop = asyncio.get_running_loop()
    started = loop.time()
    body = bytearray()
    try:
        while True:
            progress = loop.time() + grace  # the next piece, within the header timeout
            rate = started + grace + len(body) / MIN_BODY_RATE  # the whole, at the rate
            async with asyncio.timeout_at(min(progress, rate)):
                chunk = await request.content.read(CHUNK)
            if not chunk:
                break
            body += chunk
            if len(body) > limit:
                raise too_large
    except TimeoutError:
        raise Refusal(
            Code.REQUEST_TIMEOUT,
            f"the body arrived too slowly (send at least {MIN_BODY_RATE} bytes a second, "
            f"with no pause of {grace} s)",
        ) from None
    return bytes(body)


async def read_json(request: web.Request, limit: int, what: str) -> object:
    """The JSON body, at most `limit` bytes; `what` names the expected body in the refusal."""
    body = await _read(request, limit)
    try:
        return json.loads(body)
    except RecursionError:
        raise Refusal(
            Code.INVALID_PARAMETER, f"the body is nested too deeply; send {what}"
        ) from None
    except ValueError:
        raise Refusal(Code.INVALID_PARAMETER, f"the body must be {what}") from None
