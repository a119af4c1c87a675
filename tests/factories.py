"""Valid defaults for tokens, rules and identities; keyword arguments override any part."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import jwt

from gateway.auth.identity import Identity
from gateway.rules.load import parse_rules
from gateway.rules.model import Rules, Upstream

SECRET: Final = "test-secret-for-hs256-0123456789abcdef"
DEFAULT_UPSTREAM: Final = Upstream("default", "http://127.0.0.1:3000", "electric-secret")
SHIPPED_RULES: Final = Path(__file__).resolve().parent.parent / "shape_rules.yaml"

RULES_YAML: Final = """\
version: 1
identity: {user: sub, tenant: tid, role: role, memberships: tenants, plan: plan}
roles: [admin, manager, member]
shapes:
  countries:
    table: public.countries
    public: true
  projects:
    table: public.projects
    where: "tenant_id = :tenant"
    allow: [admin, manager, member]
    columns: [id, tenant_id, name]
  tasks:
    table: public.tasks
    where: "tenant_id = :tenant"
    client_where: [status, project_id]
    allow:
      admin: {}
      manager: {}
      member:
        where: "tenant_id = :tenant AND assigned_to = :user"
        columns: [id, tenant_id, project_id, title, status, assigned_to]
  drafts:
    table: public.drafts
    where: "tenant_id = :tenant AND user_id = :user"
    allow: "*"
  documents:
    table: "tenant_{tenant}.documents"
    allow: [admin, manager, member]
  org_notes:
    table: public.notes
    where: "tenant_id = :tenant AND org = :claims.org"
    allow: [admin]
"""


def make_rules(text: str = RULES_YAML, env: Mapping[str, str] | None = None) -> Rules:
    return parse_rules(
        textwrap.dedent(text), path="rules.yaml", env=env or {}, default_upstream=DEFAULT_UPSTREAM
    )


def make_identity(**overrides: Any) -> Identity:
    values: dict[str, Any] = {"user": "alice", "tenant": "acme", "role": "member"}
    values.update(overrides)
    return Identity(**values)


# Tokens made at collection (module constants, parametrize lists) must outlive the whole suite,
# which takes more than ten minutes on a loaded machine.
DEFAULT_LIFETIME = 3 * 3600


def make_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "alice",
        "tid": "acme",
        "role": "member",
        "iat": now,
        "exp": now + DEFAULT_LIFETIME,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def make_token(
    key: Any = SECRET,
    algorithm: str = "HS256",
    headers: Mapping[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A signed token; `claims` override make_claims() defaults (None removes a claim)."""
    return jwt.encode(make_claims(**claims), key, algorithm=algorithm, headers=dict(headers or {}))
