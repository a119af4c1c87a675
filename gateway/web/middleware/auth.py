"""Authentication comes first: apart from preflights and the public health routes, nothing
about a request is examined or answered before the caller is authenticated.

A token comes from `Authorization: Bearer`, else (with GATEWAY_AUTH_COOKIE) from that cookie.
A cookie rides along on requests other sites make, so cookie authentication is held to the
browser's own CSRF signals (docs/http-api.md#cookies):
- `Sec-Fetch-Site: cross-site` is refused whatever the method: the browser itself says another
  site made the request.
- `GET`/`HEAD` are accepted without `Origin` (browsers send none on a same-origin GET) and
  refused with an `Origin` not in GATEWAY_CORS_ORIGINS; they only read, and a cross-site page
  cannot read the answer without CORS anyway.
- any other method needs an allowed `Origin` (every browser sends one on a POST).
- `GATEWAY_CORS_ORIGINS=*` does not load with a cookie (settings.py): "allowed" means listed.
- the cookie must appear once: a sibling subdomain that plants a second cookie of the same
  name (cookie tossing) cannot pick which identity a request runs as.
Header values may hold any byte: a non-ASCII token or admin token is a 401, never a crash.
"""

from __future__ import annotations

import hmac
import time
from typing import Final

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from gateway.decisions import Caller
from gateway.errors import Code, Refusal
from gateway.settings import Settings
from gateway.web.keys import (
    ADMIN_FAILURES,
    ADMIN_PREFIX,
    AUDIT,
    CALLER,
    DECISIONS,
    IDENTITY,
    METRICS,
    PUBLIC_PATHS,
    RULES,
    SETTINGS,
)
from gateway.web.middleware.cors import allowed_origin

TENANT_HEADER: Final = "X-Tenant-Id"
SAFE_METHODS: Final = frozenset({hdrs.METH_GET, hdrs.METH_HEAD})


def _single(request: web.Request, name: str) -> str | None:
    values = request.headers.getall(name, [])
    if len(values) > 1:
        raise Refusal(Code.INVALID_PARAMETER, f"send the {name} header once")
    return values[0] if values else None


def _bearer(header: str, what: str) -> str:
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Refusal(Code.INVALID_TOKEN, f"use `Authorization: Bearer <{what}>`")
    if not token.isascii():
        raise Refusal(Code.INVALID_TOKEN, f"the {what} must be ASCII")
    return token


def cookie_values(request: web.Request, name: str) -> list[str]:
    """Every value sent for cookie `name` (RFC 6265 `name=value` pairs joined by `;`)."""
    values = []
    for header in request.headers.getall(hdrs.COOKIE, []):
        for pair in header.split(";"):
            key, sep, value = pair.strip().partition("=")
            if sep and key == name:
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] == '"':
                    value = value[1:-1]
                values.append(value)
    return values


def _check_cookie_request(request: web.Request, settings: Settings) -> None:
    origin = _single(request, hdrs.ORIGIN)
    if request.headers.get("Sec-Fetch-Site", "").strip().lower() == "cross-site":
        raise Refusal(
            Code.INVALID_TOKEN,
            "cookie authentication is not accepted on cross-site requests; "
            "send `Authorization: Bearer <jwt>`",
        )
    if request.method in SAFE_METHODS:
        if origin is not None and allowed_origin(settings, origin) is None:
            raise Refusal(
                Code.INVALID_TOKEN,
                f"cookie authentication is not accepted from origin {origin[:128]!r}; "
                "add it to GATEWAY_CORS_ORIGINS or send `Authorization: Bearer <jwt>`",
            )
    elif origin is None or allowed_origin(settings, origin) is None:
        raise Refusal(
            Code.INVALID_TOKEN,
            f"a cookie-authenticated {request.method} needs an Origin listed in "
            "GATEWAY_CORS_ORIGINS; send `Authorization: Bearer <jwt>` instead",
        )


def bearer_token(request: web.Request, settings: Settings) -> str:
    """The caller's token from `Authorization: Bearer`, else the configured cookie."""
    header = _single(request, hdrs.AUTHORIZATION)
    if header is not None:
        return _bearer(header, "jwt")
    if settings.auth_cookie:
        values = cookie_values(request, settings.auth_cookie)
        if len(values) > 1:
            raise Refusal(
                Code.INVALID_TOKEN,
                f"the {settings.auth_cookie} cookie was sent {len(values)} times; "
                "clear the extra cookie and retry",
            )
        if values:
            _check_cookie_request(request, settings)
            if not values[0].isascii():
                raise Refusal(Code.INVALID_TOKEN, "the token cookie must be ASCII")
            return values[0]
    raise Refusal(Code.MISSING_TOKEN, "send `Authorization: Bearer <jwt>`")


def check_admin_token(request: web.Request, expected: str) -> None:
    """Admin routes take GATEWAY_ADMIN_TOKEN as their bearer token, compared in constant time
    (on bytes: compare_digest refuses non-ASCII text, and a header may carry any byte)."""
    header = _single(request, hdrs.AUTHORIZATION)
    if header is None:
        raise Refusal(Code.MISSING_TOKEN, "send `Authorization: Bearer <admin token>`")
    scheme, _, token = header.strip().partition(" ")
    given = token.strip().encode("utf-8", "surrogateescape")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given, expected.encode()):
        raise Refusal(Code.INVALID_TOKEN, "this is not the admin token")


def authenticate_admin(request: web.Request, expected: str) -> None:
    """The admin token, its failures limited per client address
    (web/middleware/admin_guard.py). The right token always passes: an attacker sharing an
    address (a NAT, a node's proxy) must not lock ops out of the revocation API during an
    incident."""
    failures, counter = request.app[ADMIN_FAILURES], request.app[METRICS].admin_auth_failures
    address, now = request.remote or "-", time.monotonic()
    try:
        check_admin_token(request, expected)
    except Refusal:
        try:
            failures.check(address, now)
        except Refusal:
            counter.labels("limited").inc()
            raise
        failures.fail(address, now)
        counter.labels("refused").inc()
        raise


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in request.app[PUBLIC_PATHS]:
        return await handler(request)
    settings = request.app[SETTINGS]
    if request.path.startswith(ADMIN_PREFIX) and settings.admin_token:
        authenticate_admin(request, settings.admin_token)
        return await handler(request)
    token = bearer_token(request, settings)
    decisions = request.app[DECISIONS]
    digest, claims = await decisions.claims(token)
    caller = Caller(digest, _single(request, TENANT_HEADER))
    identity = decisions.identity(caller, claims, request.app[RULES].rules.identity)
    request[IDENTITY], request[CALLER] = identity, caller
    request[AUDIT].identity = identity
    return await handler(request)
