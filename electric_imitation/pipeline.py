"""The `/v1/shape` pipeline in Electric's order (`router.ex` auth, `serve_shape_plug.ex`):

authenticate (`secret`/`api_secret`, not for OPTIONS) -> CORS -> admission (our injected
faults) -> POST body -> parameters -> shape definition (where judged by Electric's parser) ->
shape lookup/creation (snapshot) -> handle check (409) -> serve (log, live, SSE or subset).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import hdrs, web

from electric_imitation.call import ClientGone, ShapeCall
from electric_imitation.catalog import Table, schema_header
from electric_imitation.definitions import judge_where, resolve_definition
from electric_imitation.deletion import delete_shape
from electric_imitation.errors import (
    ElectricError,
    InvalidRequestError,
    ParserCrashError,
    ServiceError,
    SnapshotFailedError,
)
from electric_imitation.faults import Fault
from electric_imitation.headers import PLUG_DEFAULT_CACHE, ShapeResponse, shape_headers
from electric_imitation.messages import encode
from electric_imitation.offsets import FIRST_CHUNK
from electric_imitation.params import (
    RequestParams,
    SubsetParams,
    cast_subset,
    merge_request,
    validate_params,
)
from electric_imitation.query import decode_query
from electric_imitation.recorder import RecordedRequest
from electric_imitation.responses import (
    BodyStream,
    ResponseAborted,
    crash_response,
    error_response,
    json_response,
)
from electric_imitation.serve import serve_log
from electric_imitation.shapes import ShapeDefinition
from electric_imitation.state import ElectricState
from electric_imitation.subset import serve_subset

CORS = web.RequestKey("electric_cors", str)  # the methods to advertise, once past auth
SHAPE_ROUTE_METHODS: Final = frozenset({"GET", "POST", "HEAD", "DELETE", "OPTIONS"})
_ALLOWED_PREFLIGHT_HEADERS: Final = ("if-none-match", "traceparent")
_OVERLOADED: Final = "Concurrent initial request limit exceeded (limit: 300), please retry"


async def shape_route(request: web.Request, state: ElectricState) -> web.StreamResponse:
    """Record the request, count it while it runs, and turn internal signals into responses."""
    record = state.recorder.record(request)
    state.stats.active_requests += 1
    response: web.StreamResponse
    try:
        response = await _shape(request, state, record)
    except ResponseAborted as aborted:
        response = aborted.response
    except ClientGone:
        response = web.Response(status=499)
    finally:
        state.stats.active_requests -= 1
    record.status = response.status
    return response


async def _shape(
    request: web.Request, state: ElectricState, record: RecordedRequest
) -> web.StreamResponse:
    methods = state.config.server.shape_methods
    if request.method == hdrs.METH_OPTIONS:
        request[CORS] = methods
        return _preflight(request)
    if not _authorized(record, state.config.secret):
        # Electric halts in `authenticate` before the CORS plug: no CORS, no content type.
        body = encode({"message": "Unauthorized - Invalid API secret"}).encode()
        response = web.Response(
            status=401, body=body, headers={hdrs.CACHE_CONTROL: PLUG_DEFAULT_CACHE}
        )
        response.content_type = "application/octet-stream"
        return response
    request[CORS] = methods
    if request.method == hdrs.METH_POST and not state.config.server.has("subsets"):
        return _not_found()  # before 1.4 the router has no POST route
    fault = state.faults.take()
    if fault is not None:
        refusal = await _apply_fault(request, state, fault)
        if refusal is not None:
            return refusal
    if request.method == hdrs.METH_DELETE:
        return await delete_shape(request, state)
    return await _serve(request, state, fault)


async def _serve(
    request: web.Request, state: ElectricState, fault: Fault | None
) -> web.StreamResponse:
    config = state.config
    body = await _read_body(request) if request.method == hdrs.METH_POST else None
    if isinstance(body, web.Response):
        return body
    api_meta = ShapeResponse(status=400, method=request.method)
    resolved: _Resolved | None = None
    try:
        params = validate_params(
            merge_request(decode_query(request.rel_url.raw_query_string), body, config.server),
            config.server,
        )
        async with state.db.session() as conn:
            definition, table, selected = await resolve_definition(conn, params, config.server)
            resolved = _Resolved(params, definition, table, selected)
            subset = _subset(params, table, state)
            shape = await state.shapes.get_or_create(conn, definition, table, selected)
    except ParserCrashError as crash:
        return crash_response(config, crash.exception)
    except SnapshotFailedError as failure:
        assert resolved is not None
        return await _failed_snapshot(request, state, resolved, failure)
    except ElectricError as error:
        return error_response(config, error, api_meta)
    call = ShapeCall(request=request, state=state, params=params, shape=shape, fault=fault)
    if params.handle is not None and params.handle != shape.handle:
        return call.refetch(shape.handle)
    try:
        if subset is not None:
            return await serve_subset(call, subset)
        return await serve_log(call)
    except InvalidRequestError as error:
        return error_response(config, error, call.failed(api_meta))


@dataclass(frozen=True, slots=True)
class _Resolved:
    """What is known once the definition resolved: enough to answer a failed snapshot."""

    params: RequestParams
    definition: ShapeDefinition
    table: Table
    selected: tuple[str, ...]


def _subset(params: RequestParams, table: Table, state: ElectricState) -> SubsetParams | None:
    """The subset request, its where judged like the shape's (no subqueries in a subset)."""
    if params.subset is None:
        return None
    subset = cast_subset(params.subset)
    try:
        judge_where(
            subset.where, subset.params, table, state.config.server, field="where", subqueries=False
        )
    except InvalidRequestError as error:
        raise InvalidRequestError({"subset": error.errors}) from None
    return subset


async def _failed_snapshot(
    request: web.Request, state: ElectricState, resolved: _Resolved, failure: SnapshotFailedError
) -> web.StreamResponse:
    """PostgreSQL refused a snapshot Electric's parser accepted (`versions.py`): 1.7
    answers 500; 1.0.10 had already sent a 200 and its headers, and cut the body ~5 s later."""
    config = state.config
    if not config.server.cuts_failed_snapshot:
        detail = {"message": f"Unexpected error while creating snapshot: {failure.message}"}
        return error_response(config, ServiceError(500, detail), ShapeResponse(500, request.method))
    meta = ShapeResponse(
        status=200,
        method=request.method,
        request_offset=resolved.params.offset,
        handle=state.registry.new_handle(resolved.definition),
        offset=FIRST_CHUNK,
        schema=schema_header(resolved.table, resolved.selected),
    )
    response = web.StreamResponse(status=200, headers=shape_headers(config, meta))
    body = BodyStream(request, response, config)
    await body.start()
    await asyncio.sleep(config.snapshot_failure_delay)
    body.cut()
    return response


def _not_found() -> web.Response:
    return web.Response(
        status=404, text="Not found", headers={hdrs.CACHE_CONTROL: PLUG_DEFAULT_CACHE}
    )


def _authorized(record: RecordedRequest, secret: str | None) -> bool:
    if secret is None:
        return True
    given = record.param("secret")
    if given is None:
        given = record.param("api_secret")
    return given is not None and secrets.compare_digest(given.encode(), secret.encode())


def _preflight(request: web.Request) -> web.Response:
    """`Api.Options`: 204, unauthenticated, allow only if-none-match/traceparent (whole values)."""
    headers = {"access-control-max-age": "86400", hdrs.CONNECTION: "keep-alive"}
    wanted = request.headers.getall(hdrs.ACCESS_CONTROL_REQUEST_HEADERS, [])
    allowed = [value for value in wanted if value.lower() in _ALLOWED_PREFLIGHT_HEADERS]
    if allowed:
        headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = ",".join(allowed)
    return web.Response(status=204, headers=headers)


async def _apply_fault(
    request: web.Request, state: ElectricState, fault: Fault
) -> web.Response | None:
    """A refusal for overload/crash faults; delay sleeps; abort is applied while streaming."""
    if fault.kind == "delay":
        await asyncio.sleep(fault.seconds)
        return None
    if fault.kind == "overloaded":
        body = {"code": "concurrent_request_limit_exceeded", "message": _OVERLOADED}
        error = ServiceError(503, body, retry_after=fault.retry_after, known_error=True)
        return error_response(state.config, error, ShapeResponse(503, request.method))
    if fault.kind == "internal_error":
        # Electric's crash handler: no cache headers of its own, Plug's default remains.
        return json_response(
            500, {"error": "Internal server error"}, {hdrs.CACHE_CONTROL: PLUG_DEFAULT_CACHE}
        )
    return None


async def _read_body(request: web.Request) -> dict[str, Any] | web.Response:
    """`parse_body/2`: empty is `{}`, anything but a JSON object is a 400."""
    raw = await request.read()
    if not raw:
        return {}
    headers: dict[str, str] = {hdrs.CACHE_CONTROL: PLUG_DEFAULT_CACHE}
    try:
        decoded = json.loads(raw)
    except ValueError as error:
        return json_response(
            400, {"error": "Invalid JSON in request body", "details": str(error)}, headers
        )
    if not isinstance(decoded, dict):
        return json_response(400, {"error": "Request body must be a JSON object"}, headers)
    return decoded
