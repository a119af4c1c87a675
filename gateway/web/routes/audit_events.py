"""POST /v1/audit-events: glue only (parse, then record through the configured sink)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from gateway.audit.client_events import MAX_BATCH_BYTES, parse_batch, record_batch
from gateway.errors import Code, Refusal, StoreUnavailableError
from gateway.web.body import read_json
from gateway.web.keys import AUDIT, AUDIT_SINK, IDENTITY
from gateway.web.middleware.admission import check_again

# What is stored is bounded by record_batch; the body by twice that (whitespace, the `user`
# and `tenant` fields the stamp replaces), so parsing it stays cheap.
MAX_BODY: Final = 2 * MAX_BATCH_BYTES


async def post_audit_events(request: web.Request) -> web.Response:
    document = await read_json(request, MAX_BODY, "a JSON array of events")
    check_again(request)  # the body may have taken a while: what admission checked may be old
    events = parse_batch(document)
    record = request[AUDIT]
    try:
        outcome = await record_batch(
            request.app[AUDIT_SINK], request[IDENTITY], events, record.request_id
        )
    except StoreUnavailableError:
        raise Refusal(
            Code.UPSTREAM_UNAVAILABLE, "the audit store is unreachable; nothing was recorded, retry"
        ) from None
    return web.json_response(outcome.as_json())
