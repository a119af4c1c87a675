"""`DELETE /v1/shape` (`shapes/api/delete.ex`): forget a shape, so its handle answers 409.

Electric allows it only with `ELECTRIC_ENABLE_INTEGRATION_TESTING=true` (else 405); so does
the imitation, with `ElectricConfig(allow_shape_deletion=True)`. The shape is named by its
definition (`table` and the rest) and/or its `handle`; 202 with an empty body when it existed.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from electric_imitation.definitions import resolve_definition
from electric_imitation.errors import ElectricError, InvalidRequestError
from electric_imitation.headers import ShapeResponse, shape_headers
from electric_imitation.params import merge_request, validate_params
from electric_imitation.query import decode_query
from electric_imitation.responses import error_response, json_response
from electric_imitation.state import ElectricState

_BLANK_HANDLE: Final = "can't be blank when shape definition is missing"


async def delete_shape(request: web.Request, state: ElectricState) -> web.Response:
    config = state.config
    meta = ShapeResponse(status=400, method=request.method)
    if not config.allow_shape_deletion:
        meta.status = 405
        return json_response(405, {"message": "DELETE not allowed"}, shape_headers(config, meta))
    query = decode_query(request.rel_url.raw_query_string)
    handle = query.get("handle")
    try:
        if "table" in query:
            merged = merge_request({**query, "offset": "-1"}, None, config.server)
            params = validate_params(merged, config.server)
            async with state.db.session() as conn:
                definition, _, _ = await resolve_definition(conn, params, config.server)
            shape = state.registry.get(definition)
            if shape is not None and isinstance(handle, str) and handle != shape.handle:
                raise InvalidRequestError({"handle": ["does not match the shape definition"]})
        elif isinstance(handle, str):
            shape = state.registry.by_handle(handle)
        else:
            raise InvalidRequestError(
                {"handle": ["can't be blank when shape definition is missing"]}
            )
    except ElectricError as error:
        return error_response(config, error, meta)
    if shape is None:
        meta.status = 404
        return json_response(
            404, {"message": "No existing shape found"}, shape_headers(config, meta)
        )
    state.registry.remove(shape)
    return web.Response(status=202)
