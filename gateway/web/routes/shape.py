"""/v1/shape: glue only. Authenticated identity + client query -> plan -> proxy."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Final
from urllib.parse import unquote_to_bytes

from aiohttp import hdrs, web

from gateway.errors import Code, Refusal
from gateway.shape.params import ShapeQuery, parse_shape_query, parse_subset_body
from gateway.shape.plan import UpstreamRequest
from gateway.web.body import read_json
from gateway.web.keys import AUDIT, CALLER, DECISIONS, IDENTITY, RULES
from gateway.web.middleware.admission import check_again
from gateway.web.proxy import proxy

MAX_BODY: Final = 64 * 1024


def is_live(request: web.Request) -> bool:
    """Whether this /v1/shape request will be held (a long-poll or SSE stream), for admission's
    live slot: Electric's rule, any `live` other than the literal `false` (a repeated `live` is
    refused later as a duplicate; until then the stricter reading holds the slot)."""
    return any(value != "false" for value in request.rel_url.query.getall("live", []))


def _query_items(request: web.Request) -> Iterable[tuple[str, str]]:
    """The decoded query; invalid UTF-8 in it is refused, never silently turned into U+FFFD
    (which would send Electric a value the client did not write)."""
    raw = request.rel_url.raw_query_string
    if "%" in raw or not raw.isascii():
        try:
            unquote_to_bytes(raw).decode("utf-8")
        except UnicodeError:
            raise Refusal(
                Code.INVALID_PARAMETER, "the query string must be percent-encoded UTF-8"
            ) from None
    return request.rel_url.query.items()


def _plan(request: web.Request, query: ShapeQuery) -> UpstreamRequest:
    record = request[AUDIT]
    record.shape = query.shape
    app = request.app
    planned = app[DECISIONS].plan(query, request[CALLER], request[IDENTITY], app[RULES].rules)
    record.allow(planned)
    return planned


async def get_shape(request: web.Request) -> web.StreamResponse:
    """GET and HEAD: the shape log, live long-polls and SSE."""
    planned = _plan(request, parse_shape_query(_query_items(request)))
    return await proxy(request, planned, request.method)


async def post_shape(request: web.Request) -> web.StreamResponse:
    """POST: a subset snapshot whose subset parameters come in a JSON body."""
    query = parse_shape_query(_query_items(request))
    if query.subset is not None:
        raise Refusal(
            Code.DUPLICATE_PARAMETER, "send subset parameters in the body or the query, not both"
        )
    document = await read_json(request, MAX_BODY, "a JSON object of subset parameters")
    check_again(request)  # the body may have taken a while: what admission checked may be old
    query = dataclasses.replace(query, subset=parse_subset_body(document))
    planned = _plan(request, query)
    subset = {k.removeprefix("subset__"): v for k, v in planned.query if k.startswith("subset__")}
    if "params" in subset:
        subset["params"] = json.loads(subset["params"])
    body = json.dumps(subset).encode()
    planned = dataclasses.replace(
        planned,
        query=tuple((k, v) for k, v in planned.query if not k.startswith("subset__")),
        target=None,  # encoded again from the query, without the subset
    )
    return await proxy(request, planned, hdrs.METH_POST, body)


async def delete_shape(request: web.Request) -> web.StreamResponse:
    raise Refusal(Code.METHOD_NOT_ALLOWED, "shapes cannot be deleted through the gateway")
