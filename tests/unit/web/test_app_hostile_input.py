"""No input becomes a 500: odd bytes in every header the gateway reads, bodies nested or sized
to break a parser, invalid UTF-8 in the query; each gets a clean 4xx with the spec's code."""

from __future__ import annotations

import json

import pytest

from tests.factories import make_token
from tests.gateway import GatewayFactory
from tests.unit.web.raw import raw_request, send_raw

TOKEN = make_token().encode()
BEARER = (b"Authorization", b"Bearer " + TOKEN)
JSON = (b"Content-Type", b"application/json")

CASES = {
    "admin token with invalid UTF-8": (
        raw_request("GET", "/admin/rules", [(b"Authorization", b"Bearer \xff\xfe")]),
        401, "invalid_token",
    ),
    "admin token in UTF-8": (
        raw_request("GET", "/admin/rules", [(b"Authorization", "Bearer ü".encode())]),
        401, "invalid_token",
    ),
    "bearer token with a non-ASCII byte": (
        raw_request("GET", "/v1/memberships", [(b"Authorization", b"Bearer \xff" + TOKEN)]),
        401, "invalid_token",
    ),
    "X-Tenant-Id with invalid UTF-8": (
        raw_request("GET", "/v1/memberships", [BEARER, (b"X-Tenant-Id", b"\xff\xfe")]),
        403, "tenant_not_member",
    ),
    "token cookie with a non-ASCII byte": (
        raw_request("GET", "/v1/memberships", [(b"Cookie", b"sg=\xff" + TOKEN)]),
        401, "invalid_token",
    ),
    "a cookie header of garbage": (
        raw_request("GET", "/v1/memberships", [(b"Cookie", b"\xff=\xfe; ;;= ; sg")]),
        401, "missing_token",
    ),
    "an Origin with invalid UTF-8": (
        raw_request("GET", "/v1/memberships", [(b"Cookie", b"sg=" + TOKEN),
                                               (b"Origin", b"https://\xff")]),
        401, "invalid_token",
    ),
    "invalid UTF-8 in a query value": (
        raw_request("GET", "/v1/shape?table=tasks&offset=-1&where=status%3D%27%ff%27", [BEARER]),
        400, "invalid_parameter",
    ),
    "invalid UTF-8 in a query key": (
        raw_request("GET", "/v1/shape?t%ffable=tasks&offset=-1", [BEARER]),
        400, "invalid_parameter",
    ),
    "a Last-Event-ID of garbage": (
        raw_request("GET", "/v1/events", [BEARER, (b"Last-Event-ID", b"\xff-1")]),
        400, "invalid_parameter",
    ),
    "an audit batch nested 50,000 deep": (
        raw_request("POST", "/v1/audit-events", [BEARER, JSON], b"[" * 50_000 + b"]" * 50_000),
        400, "invalid_parameter",
    ),
    "a subset body nested 30,000 deep": (
        raw_request("POST", "/v1/shape?table=tasks&offset=-1", [BEARER, JSON],
                    b'{"where":' + b"[" * 30_000 + b"]" * 30_000 + b"}"),
        400, "invalid_parameter",
    ),
    "an audit batch over 2 MiB": (
        raw_request("POST", "/v1/audit-events", [BEARER, JSON], b"[" + b" " * (3 << 20) + b"]"),
        400, "invalid_parameter",
    ),
    "a body that is not UTF-8": (
        raw_request("POST", "/v1/audit-events", [BEARER, JSON], b'[{"id": "\xff"}]'),
        400, "invalid_parameter",
    ),
    "a revocation nested 20,000 deep": (
        raw_request("POST", "/admin/revocations",
                    [(b"Authorization", b"Bearer admin-token-for-tests-0123456789"), JSON],
                    b"[" * 20_000 + b"]" * 20_000),
        400, "invalid_parameter",
    ),
}  # fmt: skip


@pytest.mark.parametrize(("request_bytes", "status", "code"), CASES.values(), ids=list(CASES))
async def test_hostile_input_gets_a_clean_refusal(
    gateway_factory: GatewayFactory, request_bytes: bytes, status: int, code: str
) -> None:
    gateway = await gateway_factory(auth_cookie="sg", cors_origins=("https://app.example",))
    response = await send_raw(gateway.url, request_bytes)
    assert response.status == status, response.body[:300]
    assert response.headers["content-type"].startswith("application/json")
    assert json.loads(response.body)["error"] == code
