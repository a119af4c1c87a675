"""Which upstream errors reach the client as Electric sent them, and which become ours.

Electric's own JSON errors pass through (400 for a where it rejects, 409 must-refetch, 503
overload with `retry-after`): the client library knows what to do with them. Two kinds do not:
- a 500: its text is an exception of Electric's (a stack fragment, a table name); the client
  gets our 502 `upstream_unavailable`, the operator gets the text in the log;
- an answer that is not JSON (a plain `Not found` from a wrong ELECTRIC_URL path, an HTML page
  from something in between): not Electric's shape API speaking, so our 502
  (`upstream_misconfigured` for a 4xx, `upstream_unavailable` for a 5xx).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import Final

import structlog
from aiohttp import hdrs

from gateway.errors import Code, Refusal
from gateway.upstream.client import UpstreamResponse
from gateway.upstream.connection import UpstreamBroken

log = structlog.get_logger(__name__)
LOGGED_BYTES: Final = 2048
PASSED_THROUGH: Final = frozenset({409})
SCHEMA_FIELDS: Final = frozenset({"table", "columns", "queryable_columns"})
FAILED = Refusal(Code.UPSTREAM_UNAVAILABLE, "Electric failed to answer this request; retry shortly")
NOT_ELECTRIC = Refusal(
    Code.UPSTREAM_MISCONFIGURED,
    "the gateway's upstream did not answer like Electric; tell the operator",
)


def _is_json(response: UpstreamResponse) -> bool:
    content_type = response.headers.get(hdrs.CONTENT_TYPE, "")
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def _decoded(raw: bytes, headers: Mapping[str, str]) -> bytes | None:
    """The start of a body as sent, decompressed if gzip'd (None: undecodable)."""
    if headers.get(hdrs.CONTENT_ENCODING, "").lower() in ("gzip", "x-gzip"):
        try:
            return zlib.decompressobj(wbits=31).decompress(raw, LOGGED_BYTES)
        except zlib.error:
            return None
    return raw[:LOGGED_BYTES]


async def _excerpt(response: UpstreamResponse) -> str:
    """The start of the body, decompressed if gzip'd, for the log (which redacts secrets)."""
    try:
        raw = await response.read(LOGGED_BYTES * 4)
    except (UpstreamBroken, TimeoutError):
        return ""
    decoded = _decoded(raw, response.headers)
    return "(undecodable gzip body)" if decoded is None else decoded.decode("utf-8", "replace")


def rejection_details(raw: bytes, headers: Mapping[str, str]) -> dict[str, object]:
    """What Electric's 4xx JSON body says was wrong, for the log: its messages about the table
    and columns (schema names, the usual fault: a column the rules name and the table lacks);
    for any other field (a where or a parameter, whose message may quote a bound value) only
    that it was rejected."""
    decoded = _decoded(raw, headers)
    try:
        document = json.loads(decoded or b"")
    except ValueError:
        return {}
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, dict):
        return {}
    return {
        field: messages if field in SCHEMA_FIELDS else "(rejected; the message is not logged)"
        for field, messages in errors.items()
    }


async def refuse_unless_electric_answered(response: UpstreamResponse) -> None:
    """Return to pass `response` through; else raise the refusal to answer with instead (the
    upstream body logged, the connection closed)."""
    status = response.status
    if status < 400 or status in PASSED_THROUGH:
        return
    if _is_json(response) and status != 500 and status < 600:
        return
    refusal = FAILED if status >= 500 else NOT_ELECTRIC
    log.error(
        "upstream_error_replaced",
        upstream_status=status,
        content_type=response.headers.get(hdrs.CONTENT_TYPE),
        body=await _excerpt(response),
        answered=refusal.code.value,
    )
    response.close()
    raise refusal
