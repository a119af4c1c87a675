"""The scoping lint (#8): only a top-level AND term comparing a plain column with :tenant or
:user pins the caller; every near miss is named."""

from __future__ import annotations

import pytest

from gateway.sql.expressions import ExpressionError
from gateway.sql.placeholders import compile_where


@pytest.mark.parametrize(
    "where",
    [
        "tenant_id = :tenant",
        ":tenant = tenant_id",
        "owner = :user AND archived = false",
        "tenant_id IN (:tenant)",
        "tenant_id IN (:tenant, :user)",
        "x = 1 AND (tenant_id = :tenant AND y = 2)",
        "(status = 'a' OR status = 'b') AND tenant_id = :tenant",
        "tenant_id = :tenant AND NOT (tenant_id <> :tenant)",
        '"Tenant" = :tenant',
    ],
)
def test_a_plain_column_equal_to_tenant_or_user_as_a_top_level_term_pins(where: str) -> None:
    compiled = compile_where(where)
    assert compiled.scoped
    assert compiled.pinning_hint is None


@pytest.mark.parametrize(
    ("where", "hint"),
    [
        ("tenant_id IN (:tenant, 'globex')", "`tenant_id IN (...)` lists values other than"),
        ("tenant_id IN (:user, :role)", "lists values other than :tenant and :user"),
        (":tenant = :tenant", "`:tenant = :tenant` compares placeholders, not a column"),
        ("tenant_id = 'acme'", "no term compares a column with :tenant or :user"),
        ("true", "no term compares a column"),
        ("role_name = :role AND org = :claims.org", "no term compares a column"),
        ("tenant_id = :tenant OR true", ":tenant appears only under OR or NOT"),
        ("tenant_id = :tenant OR tenant_id = :tenant", "only under OR or NOT"),
        ("NOT tenant_id <> :tenant", ":tenant appears only under OR or NOT"),
        ("NOT (NOT (tenant_id = :tenant))", "only under OR or NOT"),
        ("tenant_id <> :tenant", ":tenant is compared with <>; only `=` or IN pins"),
        ("tenant_id NOT IN (:tenant)", "compared with <>"),
        ("tenant_id LIKE :tenant", "compared with ~~"),
        ("tenant_id::text = :tenant", "compared with an expression, not a plain column"),
        ("'acme' = :tenant", "compared with an expression"),
        ("tenant_id::text IN (:tenant)", "the IN compares an expression, not a plain column"),
        ("x = 1 AND (owner = :user OR shared)", ":user appears only under OR or NOT"),
    ],
)
def test_near_misses_do_not_pin_and_say_why(where: str, hint: str) -> None:
    compiled = compile_where(where)
    assert not compiled.scoped
    assert compiled.pinning_hint is not None
    assert hint in compiled.pinning_hint


@pytest.mark.parametrize(
    ("where", "refused"),
    [
        ("project_id IN (SELECT id FROM projects WHERE tenant_id = :tenant)", "sub-select"),
        ("tenant_id = :tenant AND EXISTS (SELECT 1 FROM t WHERE t.u = :user)", "sub-select"),
        ("tenant_id = (SELECT :tenant)", "sub-select"),
        ("lower(tenant_id) = :tenant", "function call"),
        ("tenant_id = :tenant::text", "cast on a parameter"),
        ("tenant_id = CAST(:tenant AS text)", "cast on a parameter"),
    ],
)
def test_sub_selects_functions_and_casts_on_placeholders_do_not_load(
    where: str, refused: str
) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_where(where)
    assert refused in caught.value.message
