"""One validated shape request and the helpers every way of answering it shares."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from tests.electric.faults import Fault
from tests.electric.headers import ShapeResponse
from tests.electric.params import RequestParams
from tests.electric.responses import BodyStream, accepts_gzip
from tests.electric.shapes import Shape
from tests.electric.state import ElectricState


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

    def client_gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()

    def open_body(self, response: web.StreamResponse) -> BodyStream:
        """The streamed body writer: gzip when asked (and enabled), the abort fault if any."""
        fault = self.fault
        return BodyStream(
            self.request,
            response,
            gzip=self.state.config.gzip and accepts_gzip(self.request),
            abort_after=fault.after_bytes if fault is not None and fault.kind == "abort" else None,
        )
