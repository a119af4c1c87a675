"""Verified claims + the rules' identity mapping + `X-Tenant-Id` -> `Identity` (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from gateway.errors import Code, Refusal
from gateway.rules.model import IdentityMap

MAX_CLAIM_LENGTH: Final = 256
# C0 and C1 controls and DEL: NUL, newlines, escapes. No identity holds them; bound as a value
# they reach PostgreSQL (which refuses NUL in text) and logs (where they forge lines).
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is asking, in which tenant, as which role; every field came from a verified token."""

    user: str
    tenant: str
    role: str
    claims: Mapping[str, str] = field(default_factory=dict, repr=False)  # for :claims.X
    memberships: Mapping[str, str] = field(default_factory=dict)  # tenant -> role
    plan: str | None = None
    issued_at: int = 0
    expires_at: int = 0
    session: str | None = None  # `sid`, else `jti`: what session.revoked names


def _is_text(value: str) -> bool:
    """Valid Unicode without control characters. JSON lets a claim carry a lone surrogate
    (`"\\udcff"`), which the URL library drops when it encodes the upstream query:
    `e\\udcffve` would be bound as `eve`; and `"\\u0000"`, which PostgreSQL refuses."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return _CONTROL.search(value) is None


def _identity_string(value: object, claim: str) -> str:
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_CLAIM_LENGTH
        or not _is_text(value)
    ):
        raise Refusal(
            Code.INVALID_TOKEN,
            f"claim {claim!r} must be a non-empty string of at most {MAX_CLAIM_LENGTH} "
            "characters of valid Unicode, without control characters",
        )
    return value


def _memberships(claims: Mapping[str, Any], claim: str | None) -> dict[str, str]:
    if claim is None or claim not in claims:
        return {}
    value = claims[claim]
    if not isinstance(value, dict):
        raise Refusal(Code.INVALID_TOKEN, f"claim {claim!r} must map tenant ids to roles")
    return {
        _identity_string(tenant, claim): _identity_string(role, f"{claim}.{tenant}")
        for tenant, role in value.items()
    }


def resolve_identity(
    claims: Mapping[str, Any], mapping: IdentityMap, tenant_header: str | None = None
) -> Identity:
    """Build the caller's identity; `tenant_header` (X-Tenant-Id) picks among memberships."""
    user = _identity_string(claims.get(mapping.user), mapping.user)
    memberships = _memberships(claims, mapping.memberships)
    token_tenant = claims.get(mapping.tenant)
    selected = tenant_header is not None and tenant_header != token_tenant
    if selected:
        assert tenant_header is not None
        if tenant_header not in memberships:
            raise Refusal(
                Code.TENANT_NOT_MEMBER,
                f"this token has no membership in tenant {tenant_header[:MAX_CLAIM_LENGTH]!r}; "
                "pick one of GET /v1/memberships",
            )
        tenant, role = tenant_header, memberships[tenant_header]
    else:
        tenant = _identity_string(token_tenant, mapping.tenant)
        role_claim = claims.get(mapping.role)
        if role_claim is None and tenant in memberships:
            role_claim = memberships[tenant]
        role = _identity_string(role_claim, mapping.role)
    if tenant not in memberships and memberships:
        memberships[tenant] = role
    plan = claims.get(mapping.plan) if mapping.plan else None
    session = claims.get("sid") or claims.get("jti")
    return Identity(
        user=user,
        tenant=tenant,
        role=role,
        claims=MappingProxyType(  # string claims for :claims.NAME; invalid text never binds
            {k: v for k, v in claims.items() if isinstance(v, str) and _is_text(v)}
        ),
        memberships=MappingProxyType(memberships or {tenant: role}),
        plan=plan if isinstance(plan, str) else None,
        issued_at=int(claims.get("iat", 0)),
        expires_at=int(claims.get("exp", 0)),
        session=session if isinstance(session, str) else None,
    )
