"""A rule test case as data: who asks (`IdentitySpec`), what they send (`RequestSpec`) and what
must happen (`Allowed` with expectations on the plan, or `Refused` with a code)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.errors import Code

# What a rule test can expect as a refusal: the codes that identity, parameters and the planner
# decide. Revocation, limits and upstream failures depend on state, not on the rules.
DECIDED_BY_RULES: Final = (
    Code.INVALID_TOKEN, Code.TENANT_NOT_MEMBER, Code.UNKNOWN_ROLE, Code.UNKNOWN_SHAPE,
    Code.SHAPE_NOT_ALLOWED, Code.COLUMN_NOT_ALLOWED, Code.WHERE_NOT_ALLOWED, Code.INVALID_WHERE,
    Code.INVALID_PARAMETER, Code.UNKNOWN_PARAMETER, Code.MISSING_CLAIM, Code.INVALID_TENANT,
    Code.UPSTREAM_MISCONFIGURED,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class IdentitySpec:
    """The token a case presents, by meaning; claim names come from the rules' identity map."""

    user: str | None = None
    tenant: str | None = None
    role: str | None = None
    memberships: Mapping[str, str] | None = None
    plan: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RequestSpec:
    shape: str
    where: str | None = None
    params: Mapping[int, str] = field(default_factory=dict)
    columns: str | None = None  # as a client sends it: `id,title`
    subset: Mapping[str, Any] | None = None  # a POST body of subset parameters
    x_tenant_id: str | None = None

    def query(self) -> list[tuple[str, str]]:
        """The `/v1/shape` query string a client would send for this request."""
        pairs = [("table", self.shape), ("offset", "-1")]
        if self.where is not None:
            pairs.append(("where", self.where))
        pairs += [(f"params[{n}]", value) for n, value in sorted(self.params.items())]
        if self.columns is not None:
            pairs.append(("columns", self.columns))
        return pairs


@dataclass(frozen=True, slots=True)
class Allowed:
    """Expectations on the planned request; None means "not checked"."""

    table: str | None = None
    where: tuple[str, ...] | None = None  # canonical terms the planned where must contain
    unfiltered: bool = False  # `where: null`: the plan must have no where at all
    params: tuple[str, ...] | None = None
    columns: tuple[str, ...] | None = None
    all_columns: bool = False  # `columns: null`: no column allow-list
    upstream: str | None = None
    rows_visible_only_where: str | None = None  # canonical SQL, checked with --database
    min_rows: int | None = None
    database: bool = True  # `database: false`: not run with --database (say, no such schema)

    @property
    def asserts_rows(self) -> bool:
        return self.rows_visible_only_where is not None or self.min_rows is not None


@dataclass(frozen=True, slots=True)
class Refused:
    code: Code


@dataclass(frozen=True, slots=True)
class Case:
    path: str
    line: int
    name: str
    identity: IdentitySpec
    request: RequestSpec
    expect: Allowed | Refused

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}"
