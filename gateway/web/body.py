"""Request bodies: read whole (they arrive in pieces), bounded in size and in time, parsed as
JSON, or refused.

A body must arrive within GATEWAY_HEADER_TIMEOUT plus one second per MIN_BODY_RATE bytes of
it, so a client that trickles a byte at a time cannot hold a connection (and its descriptor).
JSON nested deeper than Python's recursion limit is refused, not a crash.
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
    expected = request.content_length if request.content_length is not None else limit
    body = bytearray()
    try:
        grace = request.app[SETTINGS].header_timeout
        async with asyncio.timeout(grace + expected / MIN_BODY_RATE):
            while chunk := await request.content.read(CHUNK):
                body += chunk
                if len(body) > limit:
                    raise too_large
    except TimeoutError:
        raise Refusal(
            Code.REQUEST_TIMEOUT,
            f"the body arrived too slowly (send at least {MIN_BODY_RATE} bytes a second)",
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
