"""Request bodies: read whole (they arrive in pieces), bounded, parsed as JSON, or refused."""

from __future__ import annotations

import json

from aiohttp import web

from gateway.errors import Code, Refusal

CHUNK = 64 * 1024


async def read_json(request: web.Request, limit: int, what: str) -> object:
    """The JSON body, at most `limit` bytes; `what` names the expected body in the refusal."""
    too_large = Refusal(Code.INVALID_PARAMETER, f"the body must be at most {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    body = bytearray()
    while chunk := await request.content.read(CHUNK):
        body += chunk
        if len(body) > limit:
            raise too_large
    try:
        return json.loads(body)
    except ValueError:
        raise Refusal(Code.INVALID_PARAMETER, f"the body must be {what}") from None
