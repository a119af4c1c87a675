"""Tokens: minted here with JWT_SECRET, verified here for the app's own writes.

The gateway verifies the same tokens on every read; it never mints one. In bearer mode the
page holds the token and sends `Authorization: Bearer`; in cookie mode the token lives in an
HttpOnly cookie scoped to `/as/USER/` (so two people can sit side by side in one browser, each
with their own cookie), which the page's script can never read.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Final

import jwt
from aiohttp import hdrs, web

from deploy.webdemo.directory import Person

COOKIE: Final = "demo_session"  # the gateway's GATEWAY_AUTH_COOKIE
LIFETIME: Final = 3600  # seconds; the demo never refreshes before this


class UnauthenticatedError(Exception):
    """No valid token on a write; the message is shown to the page."""


@dataclass(frozen=True, slots=True)
class Sessions:
    secret: str

    def mint(self, person: Person, issued_at: int) -> tuple[str, dict[str, Any]]:
        claims = {
            "sub": person.user,
            "tid": person.tenant,
            "role": person.role,
            "sid": secrets.token_hex(8),
            "iat": issued_at,
            "exp": issued_at + LIFETIME,
        }
        return jwt.encode(claims, self.secret, "HS256"), claims

    def verify(self, token: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self.secret, algorithms=["HS256"], options={"require": ["exp", "iat"]}
            )
        except jwt.InvalidTokenError as error:
            raise UnauthenticatedError(f"the token does not verify: {error}") from None
        return claims

    def from_request(self, request: web.Request, cookie: bool) -> dict[str, Any]:
        """The caller's claims: the cookie in cookie mode, else the bearer token."""
        if cookie:
            token = request.cookies.get(COOKIE)
        else:
            scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
            token = token.strip() if scheme.lower() == "bearer" else None
        if not token:
            raise UnauthenticatedError("sign in first")
        return self.verify(token)


def set_cookie(response: web.StreamResponse, user: str, token: str) -> None:
    """HttpOnly (script cannot read it), SameSite=Lax (not sent on cross-site subrequests),
    scoped to this person's path. `Secure` belongs here too behind HTTPS; the demo is plain
    HTTP on loopback."""
    response.set_cookie(
        COOKIE, token, path=f"/as/{user}/", max_age=LIFETIME, httponly=True, samesite="Lax"
    )


def clear_cookie(response: web.StreamResponse, user: str) -> None:
    response.del_cookie(COOKIE, path=f"/as/{user}/")
