"""Authentication comes first: apart from OPTIONS preflights and the health routes, nothing
about a request is examined or answered before the caller is authenticated (SPEC, HTTP API).
"""

from __future__ import annotations

import hmac
from typing import Final

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from gateway.auth.identity import resolve_identity
from gateway.errors import Code, Refusal
from gateway.settings import Settings
from gateway.web.keys import AUDIT, IDENTITY, RULES, SETTINGS, VERIFIER

UNAUTHENTICATED: Final = frozenset({"/healthz", "/readyz", "/metrics"})
ADMIN_PREFIX: Final = "/admin/"
TENANT_HEADER: Final = "X-Tenant-Id"


def _single(request: web.Request, name: str) -> str | None:
    values = request.headers.getall(name, [])
    if len(values) > 1:
        raise Refusal(Code.INVALID_PARAMETER, f"send the {name} header once")
    return values[0] if values else None


def bearer_token(request: web.Request, settings: Settings) -> str:
    """The caller's token from `Authorization: Bearer`, else the configured cookie."""
    header = _single(request, hdrs.AUTHORIZATION)
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refusal(Code.INVALID_TOKEN, "use `Authorization: Bearer <jwt>`")
        return token.strip()
    if settings.auth_cookie and settings.auth_cookie in request.cookies:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None or origin not in settings.cors_origins:
            raise Refusal(
                Code.INVALID_TOKEN,
                "cookie authentication is accepted only from an allowed Origin; "
                "send the token as `Authorization: Bearer <jwt>` instead",
            )
        return request.cookies[settings.auth_cookie]
    raise Refusal(Code.MISSING_TOKEN, "send `Authorization: Bearer <jwt>`")


def admin_authorized(request: web.Request) -> None:
    """Admin routes take GATEWAY_ADMIN_TOKEN as their bearer token, compared in constant time."""
    expected = request.app[SETTINGS].admin_token
    assert expected is not None
    header = _single(request, hdrs.AUTHORIZATION)
    if header is None:
        raise Refusal(Code.MISSING_TOKEN, "send `Authorization: Bearer <admin token>`")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), expected):
        raise Refusal(Code.INVALID_TOKEN, "this is not the admin token")


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == hdrs.METH_OPTIONS or request.path in UNAUTHENTICATED:
        return await handler(request)
    settings = request.app[SETTINGS]
    if request.path.startswith(ADMIN_PREFIX) and settings.admin_token:
        admin_authorized(request)
        return await handler(request)
    token = bearer_token(request, settings)
    claims = await request.app[VERIFIER].verify(token)
    rules = request.app[RULES].rules
    identity = resolve_identity(claims, rules.identity, _single(request, TENANT_HEADER))
    request[IDENTITY] = identity
    request[AUDIT].identity = identity
    return await handler(request)
