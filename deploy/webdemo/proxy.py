"""`/as/USER/v1/*` -> the gateway's `/v1/*`: the page and the gateway share an origin.

What a front proxy in production does, in a few lines: the request goes on with its headers
(the cookie, `Origin`, `Sec-Fetch-Site`, `If-None-Match`, `Last-Event-ID`: the gateway judges
them, not this proxy), minus hop-by-hop ones; the answer comes back unbuffered, byte for byte
(no decompression), so long-polls and SSE reach the page as the gateway flushes them. A page
that goes away cancels its request here (handler cancellation), which closes the upstream one,
so the gateway frees the caller's live slot at once.
"""

from __future__ import annotations

from typing import Final

import aiohttp
from aiohttp import hdrs, web
from multidict import CIMultiDict
from yarl import URL

HOP_BY_HOP: Final = frozenset(
    h.lower()
    for h in (
        hdrs.CONNECTION, hdrs.KEEP_ALIVE, hdrs.PROXY_AUTHENTICATE, hdrs.PROXY_AUTHORIZATION,
        hdrs.TE, hdrs.TRAILER, hdrs.TRANSFER_ENCODING, hdrs.UPGRADE, hdrs.HOST,
        hdrs.CONTENT_LENGTH,
    )
)  # fmt: skip


def upstream_session() -> aiohttp.ClientSession:
    """No timeouts past connecting (an SSE stream lasts as long as the page), bytes untouched."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=None)
    return aiohttp.ClientSession(timeout=timeout, auto_decompress=False)


async def forward(
    request: web.Request, gateway: str, session: aiohttp.ClientSession
) -> web.StreamResponse:
    prefix = f"/as/{request.match_info['user']}"
    target = URL(gateway + request.raw_path.removeprefix(prefix), encoded=True)
    sent = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP)
    body = request.content if request.body_exists else None
    async with session.request(
        request.method, target, headers=sent, data=body, allow_redirects=False
    ) as upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name, value in upstream.headers.items():
            if name.lower() not in HOP_BY_HOP:
                response.headers.add(name, value)
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
    return response
