"""`/_control/*`: the test hooks over HTTP, for clients in another process (Node tests, demo).

GET    /_control/requests   -> [{method, path, query_string, query: [[k, v]...], headers, status}]
DELETE /_control/requests   -> 204
GET    /_control/faults     -> [{kind, count, retry_after, seconds, after_bytes}] still pending
POST   /_control/faults     {kind, count?, retry_after?, seconds?, after_bytes?} -> 201 pending
DELETE /_control/faults     -> 204
POST   /_control/rotate     {handle} or {table} -> {"rotated": [{old_handle, new_handle}]} | 404
GET    /_control/stats      -> {active_requests, held_requests, cancelled_requests, shapes}
GET    /_control/shapes     -> [{handle, table, where, params, columns, replica, log, offset}]
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from aiohttp import hdrs, web

from electric_imitation.faults import Fault
from electric_imitation.messages import encode
from electric_imitation.state import ElectricState


async def handle_control(
    request: web.Request, state: ElectricState, path: list[str]
) -> web.StreamResponse:
    route = (request.method, "/".join(path))
    if route == (hdrs.METH_GET, "requests"):
        return _json(200, [entry.to_json() for entry in state.requests])
    if route == (hdrs.METH_DELETE, "requests"):
        state.clear_requests()
        return web.Response(status=204)
    if route == (hdrs.METH_GET, "faults"):
        return _json(200, [fault.to_json() for fault in state.faults.pending()])
    if route == (hdrs.METH_POST, "faults"):
        try:
            state.inject(Fault.from_json(await _body(request)))
        except (TypeError, ValueError) as error:
            return _json(400, {"message": str(error)})
        return _json(201, [fault.to_json() for fault in state.faults.pending()])
    if route == (hdrs.METH_DELETE, "faults"):
        state.clear_faults()
        return web.Response(status=204)
    if route == (hdrs.METH_POST, "rotate"):
        return await _rotate(request, state)
    if route == (hdrs.METH_GET, "stats"):
        return _json(200, {**dataclasses.asdict(state.stats), "shapes": len(state.registry)})
    if route == (hdrs.METH_GET, "shapes"):
        return _json(200, [_shape_json(shape) for shape in state.registry.all()])
    return _json(404, {"message": f"no control endpoint {request.method} /_control/{route[1]}"})


async def _rotate(request: web.Request, state: ElectricState) -> web.Response:
    try:
        body = await _body(request)
        handle = body.get("handle") if isinstance(body, dict) else None
        table = body.get("table") if isinstance(body, dict) else None
        rotations = await state.rotate(handle=handle, table=table)
    except ValueError as error:
        return _json(400, {"message": str(error)})
    if not rotations:
        return _json(404, {"message": "no shape matched"})
    return _json(200, {"rotated": [dataclasses.asdict(r) for r in rotations]})


def _shape_json(shape: Any) -> dict[str, Any]:
    definition = shape.definition
    return {
        "handle": shape.handle,
        "table": f"{definition.schema}.{definition.table}",
        "where": definition.where,
        "params": dict(definition.params),
        "columns": list(shape.selected),
        "replica": definition.replica,
        "log": definition.log,
        "offset": str(shape.last_offset),
    }


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw) if raw else {}
    except ValueError as error:
        raise ValueError(f"invalid JSON: {error}") from None


def _json(status: int, body: object) -> web.Response:
    return web.Response(status=status, text=encode(body), content_type="application/json")
