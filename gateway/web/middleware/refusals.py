"""Refusals rendered as `{"error": CODE, "message": TEXT}`, here and only here.

Core code raises `Refusal`; aiohttp's own HTTP errors (unknown path, wrong method, body too
large) become the gateway's codes; anything else is our bug: a JSON 500 whose log line carries the
traceback of that error alone, never the exception it happened to be raised beside.

A 408 (a body that did not arrive in time) is sent, then its connection closed at once
(RFC 9110 §15.5.9): aiohttp would otherwise linger up to 10 s more reading a body that is not
coming, and keep the connection open for a next request that will not come either.
"""

from __future__ import annotations

import contextlib

import structlog
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from gateway.errors import CHALLENGED, REVOKED, Code, Refusal
from gateway.web.keys import AUDIT

log = structlog.get_logger(__name__)

_HTTP_CODES = {
    404: (Code.NOT_FOUND, "there is nothing at this path; shapes are at /v1/shape"),
    405: (Code.METHOD_NOT_ALLOWED, "this method is not allowed here"),
    413: (Code.INVALID_PARAMETER, "the request body is too large"),
}
INTERNAL = Refusal(Code.INTERNAL_ERROR, "the gateway failed; this is a bug, retry")


def refusal_response(refusal: Refusal, headers: dict[str, str] | None = None) -> web.Response:
    response = web.json_response(refusal.as_json(), status=refusal.status, headers=headers)
    if refusal.retry_after is not None:
        response.headers[hdrs.RETRY_AFTER] = str(refusal.retry_after)
    if refusal.code in CHALLENGED:
        response.headers[hdrs.WWW_AUTHENTICATE] = 'Bearer realm="shape-gateway"'
    if refusal.code in REVOKED:
        # The browser's HTTP cache may still hold this caller's shape responses (private
        # caching is still caching): tell it to drop them (W3C Clear Site Data).
        response.headers["Clear-Site-Data"] = '"cache"'
    return response


async def _send_and_close(request: web.Request, response: web.Response) -> None:
    response.force_close()
    with contextlib.suppress(ConnectionResetError):
        await response.prepare(request)
        await response.write_eof()
    request.protocol.force_close()  # closes once the answer is written; no lingering


@web.middleware
async def render_refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
    record = request[AUDIT]
    try:
        return await handler(request)
    except Refusal as refusal:
        record.refuse(refusal.code.value)
        response = refusal_response(refusal)
        if refusal.code is Code.REQUEST_TIMEOUT:
            await _send_and_close(request, response)
        return response
    except web.HTTPException as error:
        code, message = _HTTP_CODES.get(error.status, (Code.INVALID_PARAMETER, error.reason))
        record.refuse(code.value)
        allow = error.headers.get(hdrs.ALLOW)
        return refusal_response(Refusal(code, message), {hdrs.ALLOW: allow} if allow else None)
    except Exception as error:
        if error.__cause__ is None:
            error.__suppress_context__ = True  # log this failure, not what it was raised beside
        log.exception("unhandled_error", path=request.path)
        record.refuse(INTERNAL.code.value)
        return refusal_response(INTERNAL)
