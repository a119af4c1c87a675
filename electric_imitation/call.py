"""One validated shape request and the helpers every way of answering it shares."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote_plus

from aiohttp import web

from electric_imitation.catalog import schema_header
from electric_imitation.errors import MustRefetchError
from electric_imitation.faults import Fault
from electric_imitation.headers import ShapeResponse
from electric_imitation.params import RequestParams
from electric_imitation.query import QueryValue, decode_query
from electric_imitation.responses import BodyStream, error_response
from electric_imitation.shapes import Shape
from electric_imitation.state import ElectricState


class ClientGone(Exception):  # noqa: N818 - an event, not a failure
    """The client disconnected while its request was held."""


@dataclass(slots=True)
class ShapeCall:
    """A request that passed validation, resolved to its shape."""

    request: web.Request
    state: ElectricState
    params: RequestParams
    shape: Shape
    fault: Fault | None

    def meta(self) -> ShapeResponse:
        """Response facts known before serving; the server fills in offset, up-to-date, ..."""
        return ShapeResponse(
            status=200,
            method=self.request.method,
            request_offset=self.params.offset,
            live=self.params.live,
            sse=self.params.live_sse,
            cursor=self.params.cursor,
            handle=self.shape.handle,
        )

    def schema(self) -> dict[str, dict[str, object]]:
        return schema_header(self.shape.table, self.shape.selected)

    def refetch(self, handle: str | None) -> web.Response:
        """409 must-refetch naming `handle`, with the shape's schema (1.0.10 sends it)."""
        meta = self.meta()
        meta.schema = self.schema()
        error = MustRefetchError(handle, location_for(self.request, handle))
        return error_response(self.state.config, error, meta)

    def failed(self, meta: ShapeResponse) -> ShapeResponse:
        """`meta` for an error raised after the shape was resolved (it knows the schema)."""
        meta.schema = self.schema()
        return meta

    def client_gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()

    def open_body(self, response: web.StreamResponse) -> BodyStream:
        """The streamed body writer: compressed when Bandit would, the abort fault if any."""
        fault = self.fault
        return BodyStream(
            self.request,
            response,
            self.state.config,
            abort_after=fault.after_bytes if fault is not None and fault.kind == "abort" else None,
        )


def location_for(request: web.BaseRequest, handle: str | None) -> str:
    """1.0.10's 409 `location`: the same query at `offset=-1` with the new handle, without
    `live` and `cursor`, encoded as `Plug.Conn.Query.encode/1` does (keys sorted). Electric's
    `secret` stays in it, as in 1.0.10: a proxy must never pass this header on."""
    query = decode_query(request.rel_url.raw_query_string)
    query.pop("live", None)
    query.pop("cursor", None)
    query["handle"] = handle or ""
    query["offset"] = "-1"
    return f"{request.path}?{'&'.join(_encode_pairs(query, None))}"


def _encode_pairs(value: dict[str, QueryValue], parent: str | None) -> list[str]:
    pairs: list[str] = []
    for key in sorted(value):
        name = quote_plus(key) if parent is None else f"{parent}[{quote_plus(key)}]"
        item = value[key]
        if isinstance(item, dict):
            pairs.extend(_encode_pairs(item, name))
        elif isinstance(item, list):
            pairs.extend(f"{name}[]={quote_plus(element)}" for element in item)
        else:
            pairs.append(f"{name}={quote_plus(item)}")
    return pairs
