"""Every refusal code the core can produce is produced here, through the whole core pipeline:
token -> identity -> query -> plan. Codes that belong to later layers are listed by name, so a
new code cannot be added without a test that makes it happen.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from gateway.auth.identity import resolve_identity
from gateway.auth.keys import StaticKeys, hmac_key
from gateway.auth.tokens import TokenPolicy, verify_token
from gateway.errors import Code, Refusal
from gateway.shape.params import parse_shape_query
from gateway.shape.plan import plan_upstream_request
from tests.factories import SECRET, make_rules, make_token

RULES = make_rules(
    """\
    version: 1
    identity: {memberships: tenants}
    roles: [admin, member]
    upstreams:
      eu: {url: "http://eu:3000"}
    routing: {claim: region}
    shapes:
      tasks:
        table: public.tasks
        where: "tenant_id = :tenant"
        client_where: [status]
        columns: [id, status]
        allow: [admin, member]
      admin_only:
        table: public.audit
        where: "tenant_id = :tenant"
        allow: [admin]
      by_org:
        table: public.notes
        where: "tenant_id = :tenant AND org = :claims.org"
        allow: [admin, member]
      documents:
        table: "tenant_{tenant}.documents"
        allow: [admin, member]
      projects:
        table: public.projects
        where: "tenant_id = :tenant"
        allow: [admin, member]
    """
)
KEYS = StaticKeys((hmac_key(SECRET),))
# Produced by the serving, revocation and limits layers, through real requests, in:
LATER_LAYERS = {
    Code.MISSING_TOKEN: "unit/web/middleware/test_auth_first.py",
    Code.NOT_FOUND: "unit/web/middleware/test_auth_first.py",
    Code.METHOD_NOT_ALLOWED: "unit/web/middleware/test_auth_first.py",
    Code.TOKEN_STALE: "functional/test_revocation_functional.py",
    Code.SESSION_REVOKED: "functional/test_revocation_functional.py",
    Code.ACCESS_REVOKED: "functional/test_revocation_functional.py",
    Code.TENANT_SUSPENDED: "functional/test_revocation_functional.py",
    Code.REVOCATION_STATE_STALE: "functional/test_revocation_functional.py",
    Code.REVOCATION_OUTCOME_UNKNOWN: "functional/test_revocation_outcome.py",
    Code.ATTRIBUTION_MISMATCH: "functional/test_audit_functional.py",
    Code.RATE_LIMITED: "functional/test_limits_functional.py",
    Code.TOO_MANY_LIVE_CONNECTIONS: "functional/test_limits_functional.py",
    Code.UPSTREAM_UNAVAILABLE: "unit/web/middleware/test_auth_first.py",
    Code.UPSTREAM_TIMEOUT: "functional/test_upstream_failures.py",
    Code.REQUEST_TIMEOUT: "unit/server/test_connections_slow_clients.py",
    Code.AUDIT_UNAVAILABLE: "unit/web/test_app_pipeline.py",
    Code.INTERNAL_ERROR: "unit/web/test_app_pipeline.py",
}


def decide(
    query: list[tuple[str, str]], token: str | None = None, tenant_header: str | None = None
) -> None:
    claims = verify_token(token or make_token(), KEYS, TokenPolicy(), time.time())
    identity = resolve_identity(claims, RULES.identity, tenant_header)
    plan_upstream_request(parse_shape_query(query), identity, RULES)


T = [("table", "tasks"), ("offset", "-1")]
CASES: dict[Code, dict[str, Any]] = {
    Code.UNKNOWN_PARAMETER: {"query": [*T, ("api_key", "x")]},
    Code.DUPLICATE_PARAMETER: {"query": [*T, ("table", "admin_only")]},
    Code.FORBIDDEN_PARAMETER: {"query": [*T, ("secret", "guess")]},
    Code.INVALID_WHERE: {"query": [*T, ("where", "1=1) OR (1=1")]},
    Code.INVALID_PARAMETER: {"query": [("offset", "-1")]},
    Code.INVALID_TOKEN: {"query": T, "token": make_token(key="wrong-secret-wrong-secret-wrong-00")},
    Code.TOKEN_EXPIRED: {"query": T, "token": make_token(iat=1_000_000, exp=1_000_100)},
    Code.UNKNOWN_ROLE: {"query": T, "token": make_token(role="owner")},
    Code.SHAPE_NOT_ALLOWED: {"query": [("table", "admin_only"), ("offset", "-1")]},
    Code.COLUMN_NOT_ALLOWED: {"query": [*T, ("columns", "id,salary")]},
    Code.WHERE_NOT_ALLOWED: {"query": [("table", "projects"), ("offset", "-1"), ("where", "true")]},
    Code.MISSING_CLAIM: {"query": [("table", "by_org"), ("offset", "-1")]},
    Code.INVALID_TENANT: {
        "query": [("table", "documents"), ("offset", "-1")],
        "token": make_token(tid="Acme_Corp"),
    },
    Code.TENANT_NOT_MEMBER: {"query": T, "tenant_header": "globex"},
    Code.UNKNOWN_SHAPE: {"query": [("table", "public.tasks"), ("offset", "-1")]},
    Code.UPSTREAM_MISCONFIGURED: {"query": T, "token": make_token(region="mars")},
}


@pytest.mark.parametrize("code", list(CASES), ids=[c.value for c in CASES])
def test_core_produces_refusal(code: Code) -> None:
    with pytest.raises(Refusal) as caught:
        decide(**CASES[code])
    assert caught.value.code is code
    assert caught.value.message


@pytest.mark.parametrize(("code", "where"), LATER_LAYERS.items())
def test_later_layer_codes_are_asserted_in_the_named_test_file(code: Code, where: str) -> None:
    text = (Path(__file__).parents[1] / where).read_text()
    assert f'"{code.value}"' in text


def test_every_code_is_produced_here_or_named_as_a_later_layers() -> None:
    assert set(Code) == set(CASES) | set(LATER_LAYERS)
    assert not set(CASES) & set(LATER_LAYERS)
