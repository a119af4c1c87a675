"""Revocation routes: the caller's event feed, their memberships, and the admin publish API."""

from __future__ import annotations

from aiohttp import web

from gateway.errors import Code, Refusal, StoreUnavailableError
from gateway.revocation.events import EventError, parse_event_request
from gateway.revocation.feed import replay
from gateway.revocation.publisher import NotReplicatedError, OutcomeUnknownError
from gateway.web.body import read_json
from gateway.web.keys import AUDIT, FEED, IDENTITY, REVOCATIONS, STREAM
from gateway.web.sse import feed_response, last_event_id, stream_events


async def get_events(request: web.Request) -> web.StreamResponse:
    """GET /v1/events: SSE of the revocation events that concern the caller. Admitted like a
    shape request (revocation check, budget, a live slot) and tracked like one: the event that
    ends the caller's access is delivered, then the feed ends; so does its token's expiry."""
    identity = request[IDENTITY]
    since = last_event_id(request)
    revocations = request.app[REVOCATIONS]
    record = request[AUDIT]
    response = feed_response()
    try:
        await stream_events(
            request,
            response,
            request[STREAM],
            request.app[FEED],
            lambda: replay(revocations.log, identity, since),
        )
    except ConnectionResetError:
        record.client_closed()
    finally:
        record.bytes = response.sent  # the body bytes it wrote, however it ended
    return response


async def get_memberships(request: web.Request) -> web.Response:
    """GET /v1/memberships: the token's tenants and roles minus revocations, for clients
    pruning local data at start-up. A tenant missing here must be dropped locally."""
    identity = request[IDENTITY]
    state = request.app[REVOCATIONS].state
    memberships = []
    for tenant, role in sorted(identity.memberships.items()):
        if tenant in state.suspended:
            continue
        if state.membership_revoked(identity.user, tenant, identity.issued_at):
            continue
        stale = state.role_stale(identity.user, tenant, identity.issued_at)
        memberships.append(
            {
                "tenant": tenant,
                "role": role,
                "active": tenant == identity.tenant,
                "status": "stale" if stale else "ok",
            }
        )
    return web.json_response({"user": identity.user, "memberships": memberships})


async def post_revocation(request: web.Request) -> web.Response:
    """POST /admin/revocations: validate, publish, answer 202 with the event id once Redis has
    it (on a replica too, when the master has replicas). 503 `revocation_state_stale` when it
    was not accepted, or no replica confirmed it in time; 503 `revocation_outcome_unknown` when
    it may have been applied (publishing it again with its event_id is safe)."""
    document = await read_json(request, 16 * 1024, "a JSON event")
    if not isinstance(document, dict):
        raise Refusal(Code.INVALID_PARAMETER, "the body must be a JSON object")
    try:
        event_request = parse_event_request(document).named()
    except EventError as error:
        raise Refusal(Code.INVALID_PARAMETER, str(error)) from None
    try:
        event = await request.app[REVOCATIONS].publish(event_request)
    except NotReplicatedError as error:
        raise Refusal(Code.REVOCATION_STATE_STALE, str(error)) from None
    except OutcomeUnknownError as error:
        raise Refusal(Code.REVOCATION_OUTCOME_UNKNOWN, str(error)) from None
    except StoreUnavailableError:
        raise Refusal(
            Code.REVOCATION_STATE_STALE,
            f"Redis is unreachable; the event (event_id {event_request.event_id}) was not "
            "accepted, retry",
        ) from None
    body = {"id": event.id, "event_id": event.event_id, "event": event.as_json()}
    return web.json_response(body, status=202)
