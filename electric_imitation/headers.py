"""Response headers Electric sets: CORS, cache-control, cursor, ETag (`response.ex`, `utils.ex`)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import hdrs, web

from electric_imitation.config import ElectricConfig
from electric_imitation.messages import encode
from electric_imitation.offsets import LogOffset, Now

JSON_TYPE: Final = "application/json; charset=utf-8"
# Plug's default for a response nobody gave a cache-control (router-level 401/404, crashes).
PLUG_DEFAULT_CACHE: Final = "max-age=0, private, must-revalidate"
OTHER_METHODS: Final = "GET, HEAD"
OFFSET_MINUS_ONE_CACHE: Final = (
    "public, max-age=604800, s-maxage=3600, stale-while-revalidate=2629746"
)
LIVE_CACHE: Final = "public, max-age=5, stale-while-revalidate=5"
CATCH_UP_CACHE: Final = "public, max-age=60, stale-while-revalidate=300"
_CURSOR_EPOCH: Final = 1728432000  # 2024-10-09T00:00:00Z
# Erlang's `System.monotonic_time/0` starts near -2**59 ns: the clock in the ETag of an empty
# live answer is negative (seen on 1.0.10: `"<handle>:<offset>:<offset>:-576460...`).
_ERLANG_MONOTONIC_START: Final = -(2**59)


def server_banner(config: ElectricConfig) -> str:
    """`electric-server`, sent on every response (`router.ex` `server_header/2`)."""
    return f"ElectricSQL/{config.server.name}"


def cors_headers(request: web.BaseRequest, config: ElectricConfig, methods: str) -> dict[str, str]:
    """CORSHeaderPlug: echo the Origin (else `*`), expose Electric's headers, list methods."""
    return {
        hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: request.headers.get(hdrs.ORIGIN, "*"),
        hdrs.ACCESS_CONTROL_EXPOSE_HEADERS: config.server.exposed_headers,
        hdrs.ACCESS_CONTROL_ALLOW_METHODS: methods,
    }


def next_cursor(long_poll_timeout: float, previous: str | None) -> str:
    """`get_next_interval_timestamp/2`: seconds since 2024-10-09 rounded up to the poll window,
    bumped past the request's cursor so successive live URLs differ (`Electric.Plug.Utils`)."""
    window = int(long_poll_timeout * 1000) // 1000
    if window == 0:
        return "0"
    elapsed = int(time.time()) - _CURSOR_EPOCH
    interval = -(-elapsed // window) * window
    prev = int(previous) if previous and previous.lstrip("-").isdigit() else 0
    if interval > prev:
        return str(interval)
    return str(prev + random.randint(1, 3600))


@dataclass(slots=True)
class ShapeResponse:
    """What `put_resp_headers/2` needs to know about a shape response."""

    status: int
    method: str
    request_offset: LogOffset | Now | None = None
    live: bool = False
    sse: bool = False
    cursor: str | None = None
    handle: str | None = None
    offset: LogOffset | None = None
    schema: dict[str, Any] | None = None
    up_to_date: bool = False
    no_changes: bool = False
    known_error: bool = False
    retry_after: int | None = None
    location: str | None = None  # 1.0.10's 409 points at the shape's new first chunk


def shape_headers(config: ElectricConfig, response: ShapeResponse) -> dict[str, str]:
    """Headers for a `/v1/shape` response, in Electric's order (`put_resp_headers/2`)."""
    server = config.server
    failed = response.status >= 400
    headers: dict[str, str] = {}
    headers.update(_cache_headers(config, response))
    if response.live and not failed and response.request_offset is not None:
        headers["electric-cursor"] = next_cursor(config.long_poll_timeout, response.cursor)
    if response.handle is not None:
        headers[hdrs.ETAG] = '"' + etag_value(response) + '"'
    if response.location is not None:
        headers[hdrs.LOCATION] = response.location
    if response.handle is not None:
        headers["electric-handle"] = response.handle
    if _has_schema(config, response):
        headers["electric-schema"] = encode(response.schema)
    if response.up_to_date and not failed:
        headers["electric-up-to-date"] = ""
    if server.has("has_data") and not failed:
        headers["electric-has-data"] = "false" if response.no_changes else "true"
    if response.offset is not None and not failed:
        headers["electric-offset"] = str(response.offset)
    if response.known_error:
        headers["electric-internal-known-error"] = "true"
    if response.retry_after is not None:
        headers[hdrs.RETRY_AFTER] = str(response.retry_after)
    if response.live and response.sse and not failed:
        headers[hdrs.CONTENT_TYPE] = "text/event-stream"
        headers[hdrs.CONNECTION] = "keep-alive"
    else:
        headers[hdrs.CONTENT_TYPE] = JSON_TYPE
    return headers


def _has_schema(config: ElectricConfig, response: ShapeResponse) -> bool:
    # 1.7 sends the schema only with a non-live 200; 1.0.10 with every response whose request
    # it did not parse as live, errors included (`null` when there is no shape; seen).
    if config.server.schema_on_errors:
        return not response.live or response.status >= 400
    return not response.live and response.status == 200 and response.schema is not None


def etag_value(response: ShapeResponse) -> str:
    """`handle:requested:response`; empty responses add a clock so they never revalidate."""
    requested = "" if response.request_offset is None else str(response.request_offset)
    offset = "" if response.offset is None else str(response.offset)
    value = f"{response.handle}:{requested}:{offset}"
    if response.no_changes:
        value += f":{_ERLANG_MONOTONIC_START + time.monotonic_ns()}"
    return value


def if_none_match(request: web.BaseRequest) -> set[str]:
    """ETags from If-None-Match, split on commas and unquoted like `if_none_match/1`."""
    values = request.headers.getall(hdrs.IF_NONE_MATCH, [])
    return {part.strip().strip('"') for value in values for part in value.split(",")}


def _cache_headers(config: ElectricConfig, response: ShapeResponse) -> dict[str, str]:
    if response.method not in ("GET", "HEAD", "OPTIONS"):
        return {hdrs.CACHE_CONTROL: "no-cache"}
    server = config.server
    if response.status == 409:
        age = 1 if response.handle is None else 60
        return {hdrs.CACHE_CONTROL: f"public, max-age={age}, must-revalidate"}
    if response.status >= 400:
        headers: dict[str, str] = {hdrs.CACHE_CONTROL: server.error_cache_control}
        if server.surrogate_no_store:
            headers["surrogate-control"] = "no-store"
        return headers
    if isinstance(response.request_offset, LogOffset) and response.request_offset.is_before_all:
        return {hdrs.CACHE_CONTROL: OFFSET_MINUS_ONE_CACHE}
    if response.live and response.sse:
        return {hdrs.CACHE_CONTROL: f"public, max-age={max(1, int(config.sse_timeout) - 1)}"}
    if response.live:
        return {hdrs.CACHE_CONTROL: LIVE_CACHE}
    return {hdrs.CACHE_CONTROL: CATCH_UP_CACHE}
