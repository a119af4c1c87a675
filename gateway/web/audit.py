"""POST /v1/audit-events: glue only (parse, admit, record through the configured sink)."""

from __future__ import annotations

import json
from typing import Final

from aiohttp import web
from redis.exceptions import RedisError

from gateway.audit.client_events import parse_batch, record_batch
from gateway.errors import Code, Refusal
from gateway.web.keys import AUDIT, AUDIT_SINK, IDENTITY
from gateway.web.shape import admit

MAX_BODY: Final = 2 * 1024 * 1024


async def post_audit_events(request: web.Request) -> web.Response:
    await admit(request)
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise Refusal(Code.INVALID_PARAMETER, f"the body must be at most {MAX_BODY} bytes")
    try:
        document = json.loads(raw)
    except ValueError:
        raise Refusal(Code.INVALID_PARAMETER, "the body must be a JSON array of events") from None
    events = parse_batch(document)
    record = request[AUDIT]
    record.decision, record.reason = "allowed", "ok"
    try:
        outcome = await record_batch(
            request.app[AUDIT_SINK], request[IDENTITY], events, record.request_id
        )
    except (RedisError, OSError):
        raise Refusal(
            Code.UPSTREAM_UNAVAILABLE, "the audit store is unreachable; nothing was recorded, retry"
        ) from None
    return web.json_response(outcome.as_json())
