"""How an UpstreamRequest reaches Electric: kept-alive connections (upstream/connection.py),
one request at a time on each, pooled per upstream.

Bytes and `content-encoding` pass through as Electric sent them; timeouts outlast Electric's
20 s long-poll and 60 s SSE stream; connection failures are mapped to the gateway's codes
(docs/http-api.md#errors). A kept-alive connection Electric closed while it sat idle fails
before any byte of an answer: that request is sent once more, on a new connection (every
request the gateway makes upstream is a read, so repeating it is safe).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final
from urllib.parse import urlsplit

import aiohttp
import structlog
from aiohttp import hdrs
from multidict import CIMultiDictProxy

from gateway.errors import Code, Refusal
from gateway.shape.plan import SHAPE_PATH, UpstreamRequest, encode_query
from gateway.upstream.connection import Connection, UpstreamBroken

log = structlog.get_logger(__name__)

IDLE_SECONDS: Final = 30.0  # below common server keep-alive timeouts (Bandit's is 60 s)
MAX_IDLE: Final = 512  # kept-alive connections per upstream


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
Key = tuple[str, str, int]  # scheme, host, port


@dataclass(frozen=True, slots=True)
class Endpoint:
    key: Key
    host_header: str
    base_path: str


@lru_cache(maxsize=64)
def endpoint(url: str) -> Endpoint:
    parts = urlsplit(url)
    scheme, host = parts.scheme, parts.hostname or ""
    port = parts.port or (443 if scheme == "https" else 80)
    return Endpoint((scheme, host, port), parts.netloc, parts.path.rstrip("/"))


def make_session() -> aiohttp.ClientSession:
    """For the JWKS endpoint: a general client, where one fetch a minute is all there is."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), raise_for_status=False)


class UpstreamPool:
    """Idle kept-alive connections per upstream; one request at a time on each."""

    def __init__(self) -> None:
        self._idle: dict[Key, list[Connection]] = {}
        self._tls = ssl.create_default_context()

    async def acquire(self, key: Key, connect_timeout: float) -> Connection:
        loop = asyncio.get_running_loop()
        idle = self._idle.get(key)
        now = loop.time()
        while idle:
            connection = idle.pop()
            transport = connection.transport
            if (
                transport is not None
                and not transport.is_closing()
                and now - connection.idle_since < IDLE_SECONDS
            ):
                connection.reused = True
                return connection
            connection.close()
        scheme, host, port = key
        async with asyncio.timeout(connect_timeout):
            _, connection = await loop.create_connection(
                lambda: Connection(key),
                host,
                port,
                ssl=self._tls if scheme == "https" else None,
                server_hostname=host if scheme == "https" else None,
            )
        return connection

    def release(self, connection: Connection) -> None:
        idle = self._idle.setdefault(connection.key, [])
        if connection.reusable and len(idle) < MAX_IDLE:
            connection.idle_since = asyncio.get_running_loop().time()
            idle.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()


class UpstreamResponse:
    """Electric's answer: status and headers read, the body the caller's to stream."""

    __slots__ = ("_connection", "_pool", "headers", "status")

    def __init__(self, pool: UpstreamPool, connection: Connection) -> None:
        self._pool, self._connection = pool, connection
        self.status = connection.status
        self.headers: CIMultiDictProxy[str] = connection.headers

    def chunks(self) -> AsyncIterator[bytes]:
        return self._connection.chunks()

    async def read(self, limit: int) -> bytes:
        return await self._connection.read(limit)

    def release(self) -> None:
        """The body was read whole: the connection may serve the next request."""
        self._pool.release(self._connection)

    def close(self) -> None:
        """Abandon the answer (a client gone, an error): the connection is closed."""
        self._connection.close()


def forwarded_headers(incoming: Mapping[str, str]) -> dict[str, str]:
    return {name: incoming[name] for name in FORWARDED if name in incoming}


def _head(
    request: UpstreamRequest, method: str, headers: Mapping[str, str], body: bytes | None
) -> bytes:
    where = endpoint(request.upstream.url)
    target = request.target if request.target is not None else encode_query(request.query)
    if request.upstream.secret:
        secret = encode_query((("secret", request.upstream.secret),))
        target = f"{target}&{secret}" if target else secret
    lines = [
        f"{method} {where.base_path}{SHAPE_PATH}?{target} HTTP/1.1",
        f"Host: {where.host_header}",
    ]
    forwarded = forwarded_headers(headers)
    if body is not None:
        forwarded.pop(hdrs.CONTENT_TYPE, None)  # ours, below: the body is the gateway's JSON
    for name, value in forwarded.items():
        if value.isascii() and value.isprintable():  # anything else is not worth a header
            lines.append(f"{name}: {value}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def encode_request(
    request: UpstreamRequest, method: str, headers: Mapping[str, str], body: bytes | None
) -> bytes:
    """The request exactly as Electric receives it (head and body): what collapsing keys on
    (upstream/exchange.py)."""
    return _head(request, method, headers, body) + (body or b"")


async def send(
    pool: UpstreamPool,
    request: UpstreamRequest,
    *,
    method: str,
    headers: Mapping[str, str],
    body: bytes | None = None,
    timeouts: Timeouts,
    raw: bytes | None = None,
) -> UpstreamResponse:
    """Send and return the response with its headers read (the body is the caller's to stream).

    Raises Refusal: 502 upstream_unavailable, 504 upstream_timeout, and 502
    upstream_misconfigured when Electric refuses our secret (never shown to clients as a 401).
    `raw`: the request already encoded by `encode_request` (then `headers` and `body` are unused).
    """
    if raw is None:
        raw = encode_request(request, method, headers, body)
    read_timeout = timeouts.sse_read if request.sse else timeouts.read
    key = endpoint(request.upstream.url).key
    for attempt in (1, 2):
        try:
            connection = await pool.acquire(key, timeouts.connect)
        except TimeoutError:
            raise Refusal(
                Code.UPSTREAM_TIMEOUT, "Electric did not answer in time; retry shortly"
            ) from None
        except OSError as error:
            log.warning("upstream_unreachable", upstream=request.upstream.name, reason=str(error))
            raise Refusal(
                Code.UPSTREAM_UNAVAILABLE, "Electric is unreachable from the gateway; retry shortly"
            ) from None
        try:
            await connection.start(raw, head=method == hdrs.METH_HEAD, read_timeout=read_timeout)
        except UpstreamBroken as error:
            connection.close()
            if attempt == 1 and connection.answered_nothing:
                continue  # a kept-alive connection Electric had closed: once more, anew
            log.warning("upstream_unreachable", upstream=request.upstream.name, reason=str(error))
            raise Refusal(
                Code.UPSTREAM_UNAVAILABLE, "Electric is unreachable from the gateway; retry shortly"
            ) from None
        except TimeoutError:
            connection.close()
            raise Refusal(
                Code.UPSTREAM_TIMEOUT, "Electric did not answer in time; retry shortly"
            ) from None
        except BaseException:
            connection.close()
            raise
        break
    response = UpstreamResponse(pool, connection)
    if response.status == 401:
        response.close()
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
