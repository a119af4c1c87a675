"""The one pooled ClientSession and how an UpstreamRequest is sent through it.

No decompression (bytes and `content-encoding` pass through as Electric sent them), no cookie
jar, timeouts that outlast Electric's 20 s long-poll and 60 s SSE stream, and connection
failures mapped to the spec's codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import aiohttp
import structlog
from aiohttp import hdrs

from gateway.errors import Code, Refusal
from gateway.shape.plan import UpstreamRequest

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. Reads outlast Electric's 20 s long-poll (and answer well before the client's
    45 s watchdog) and its 60 s SSE stream, whose keep-alives come every 21 s."""

    connect: float = 5.0
    read: float = 35.0
    sse_read: float = 65.0


# Request headers a client may send that Electric uses; everything else stays here.
FORWARDED: Final = (
    hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.IF_NONE_MATCH, hdrs.CONTENT_TYPE, "traceparent",
)  # fmt: skip


def make_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=60, enable_cleanup_closed=True),
        skip_auto_headers=(hdrs.ACCEPT_ENCODING, hdrs.USER_AGENT),
        raise_for_status=False,
    )


def timeout_for(request: UpstreamRequest, timeouts: Timeouts) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(
        total=None,
        connect=timeouts.connect,
        sock_read=timeouts.sse_read if request.sse else timeouts.read,
    )


def forwarded_headers(incoming: Mapping[str, str]) -> dict[str, str]:
    return {name: incoming[name] for name in FORWARDED if name in incoming}


async def send(
    session: aiohttp.ClientSession,
    request: UpstreamRequest,
    *,
    method: str,
    headers: Mapping[str, str],
    body: bytes | None = None,
    timeouts: Timeouts,
) -> aiohttp.ClientResponse:
    """Send and return the response with its headers read (the body is the caller's to stream).

    Raises Refusal: 502 upstream_unavailable, 504 upstream_timeout, and 502
    upstream_misconfigured when Electric refuses our secret (never shown to clients as a 401).
    """
    outgoing = forwarded_headers(headers)
    if body is not None:
        outgoing[hdrs.CONTENT_TYPE] = "application/json"
    try:
        response = await session.request(
            method,
            request.url(),
            headers=outgoing,
            data=body,
            timeout=timeout_for(request, timeouts),
            allow_redirects=False,
        )
    except TimeoutError:
        raise Refusal(
            Code.UPSTREAM_TIMEOUT, "Electric did not answer in time; retry shortly"
        ) from None
    except aiohttp.ClientError as error:
        log.warning("upstream_unreachable", upstream=request.upstream.name, reason=str(error))
        raise Refusal(
            Code.UPSTREAM_UNAVAILABLE, "Electric is unreachable from the gateway; retry shortly"
        ) from None
    if response.status == 401:
        response.release()
        log.error(
            "upstream_refused_secret",
            upstream=request.upstream.name,
            hint="ELECTRIC_SECRET (or this upstream's secret in the rules) is not Electric's",
        )
        raise Refusal(
            Code.UPSTREAM_MISCONFIGURED,
            "the gateway is misconfigured for this upstream; tell the operator",
        )
    return response
