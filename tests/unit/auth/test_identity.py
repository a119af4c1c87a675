"""Identity from verified claims: mapping, memberships, X-Tenant-Id and claim shapes."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.auth.identity import resolve_identity
from gateway.errors import Code, Refusal
from gateway.rules.model import IdentityMap
from tests.factories import make_claims

MAPPING = IdentityMap(memberships="tenants", plan="plan")


def refused(claims: dict[str, Any], header: str | None = None) -> Refusal:
    with pytest.raises(Refusal) as caught:
        resolve_identity(claims, MAPPING, header)
    return caught.value


def test_identity_comes_from_the_mapped_claims() -> None:
    identity = resolve_identity(make_claims(plan="free", sid="s1", org="sales"), MAPPING)
    assert (identity.user, identity.tenant, identity.role) == ("alice", "acme", "member")
    assert identity.plan == "free"
    assert identity.session == "s1"
    assert identity.claims["org"] == "sales"


def test_custom_claim_names_are_honoured() -> None:
    mapping = IdentityMap(user="uid", tenant="org_id", role="org_role")
    claims = make_claims(sub=None, tid=None, role=None, uid="u1", org_id="o1", org_role="admin")
    identity = resolve_identity(claims, mapping)
    assert (identity.user, identity.tenant, identity.role) == ("u1", "o1", "admin")


def test_x_tenant_id_picks_a_membership_and_its_role() -> None:
    claims = make_claims(tenants={"acme": "member", "globex": "admin"})
    identity = resolve_identity(claims, MAPPING, "globex")
    assert (identity.tenant, identity.role) == ("globex", "admin")


def test_x_tenant_id_outside_memberships_is_refused_tenant_not_member() -> None:
    claims = make_claims(tenants={"acme": "member"})
    assert refused(claims, "globex").code is Code.TENANT_NOT_MEMBER
    assert refused(make_claims(), "globex").code is Code.TENANT_NOT_MEMBER


def test_memberships_alone_suffice_when_the_header_picks_a_tenant() -> None:
    claims = make_claims(tid=None, role=None, tenants={"acme": "member"})
    assert resolve_identity(claims, MAPPING, "acme").role == "member"
    assert refused(claims).code is Code.INVALID_TOKEN  # no header, no tid: which tenant?


@pytest.mark.parametrize(
    "overrides",
    [
        {"sub": None},
        {"sub": ""},
        {"sub": 42},
        {"sub": "x" * 257},
        {"tid": ["acme"]},
        {"role": None},
        {"tenants": ["acme"]},
        {"tenants": {"acme": 1}},
    ],
)
def test_identity_claims_must_be_short_non_empty_strings(overrides: dict[str, Any]) -> None:
    assert refused(make_claims(**overrides)).code is Code.INVALID_TOKEN


@pytest.mark.parametrize("claim", ["sub", "tid", "role"])
def test_a_lone_surrogate_in_an_identity_claim_is_refused(claim: str) -> None:
    # JSON can carry "\udcff"; the upstream URL's encoder would silently drop it, binding
    # `e\udcffve` as `eve`: another user's rows.
    with pytest.raises(Refusal) as caught:
        resolve_identity(make_claims(**{claim: "e\udcffve"}), IdentityMap())
    assert caught.value.code is Code.INVALID_TOKEN


def test_a_claim_that_is_not_valid_text_is_never_bound() -> None:
    identity = resolve_identity(make_claims(org="a\udcffb", region="eu"), IdentityMap())
    assert "org" not in identity.claims
    assert identity.claims["region"] == "eu"


@pytest.mark.parametrize("value", ["ali\x00ce", "alice\n", "a\x1bb", "a\x7fb", "a\x85b"])
@pytest.mark.parametrize("claim", ["sub", "tid", "role"])
def test_a_control_character_in_an_identity_claim_is_refused(claim: str, value: str) -> None:
    assert refused(make_claims(**{claim: value})).code is Code.INVALID_TOKEN


def test_a_control_character_in_a_membership_is_refused_and_other_claims_never_bind() -> None:
    assert refused(make_claims(tenants={"ac\x00me": "member"})).code is Code.INVALID_TOKEN
    assert refused(make_claims(tenants={"acme": "mem\x00ber"})).code is Code.INVALID_TOKEN
    identity = resolve_identity(make_claims(org="sa\x00les", name="Ann\nLee"), IdentityMap())
    assert "org" not in identity.claims  # a :claims.org where then refuses: missing_claim
    assert "name" not in identity.claims
