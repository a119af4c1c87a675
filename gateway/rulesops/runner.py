"""Run rule test cases through the serving path and compare with what each case expects.

Pure, and the same code as serving: claims built from the rules' identity map go through
`resolve_identity` (so `X-Tenant-Id` and memberships behave as they do for a real token), the
request through `parse_shape_query` (and `parse_subset_body`, as a POST would), and the decision
through `plan_upstream_request`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.auth.identity import Identity, resolve_identity
from gateway.errors import Refusal
from gateway.rules.model import IdentityMap, Rules
from gateway.rulesops.conjuncts import render_conjuncts
from gateway.rulesops.model import Allowed, Case, IdentitySpec, Refused
from gateway.shape.params import parse_shape_query, parse_subset_body
from gateway.shape.plan import UpstreamRequest, plan_upstream_request
from gateway.sql.identifiers import IdentifierError, format_relation, parse_relation


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: Case
    outcome: UpstreamRequest | Refusal | None  # None: the case could not be put to the rules
    identity: Identity | None = None  # None when the identity itself was refused
    mismatches: tuple[str, ...] = ()
    rows: int | None = None  # rows the planned query returned, with --database

    @property
    def passed(self) -> bool:
        return not self.mismatches


class CaseError(Exception):
    """A case the rules cannot express (say, memberships when the rules map no such claim)."""


def build_claims(spec: IdentitySpec, mapping: IdentityMap) -> dict[str, Any]:
    """The verified claims a token for `spec` would carry, named as the rules map them."""
    claims = dict(spec.claims)
    identity_claims = (
        (mapping.user, spec.user),
        (mapping.tenant, spec.tenant),
        (mapping.role, spec.role),
    )
    claims |= {claim: value for claim, value in identity_claims if value is not None}
    if spec.memberships is not None:
        if mapping.memberships is None:
            raise CaseError("identity.memberships: the rules map no memberships claim")
        claims[mapping.memberships] = dict(spec.memberships)
    if spec.plan is not None:
        if mapping.plan is None:
            raise CaseError("identity.plan: the rules map no plan claim")
        claims[mapping.plan] = spec.plan
    return claims


def decide(case: Case, rules: Rules) -> tuple[Identity | None, UpstreamRequest | Refusal]:
    """What the gateway would do with this case's request: its plan, or its refusal."""
    identity = None
    try:
        claims = build_claims(case.identity, rules.identity)
        identity = resolve_identity(claims, rules.identity, case.request.x_tenant_id)
        query = parse_shape_query(case.request.query())
        if case.request.subset is not None:
            query = dataclasses.replace(query, subset=parse_subset_body(case.request.subset))
        return identity, plan_upstream_request(query, identity, rules)
    except Refusal as refusal:
        return identity, refusal


def bound_terms(request: UpstreamRequest) -> list[str]:
    """The planned where's AND terms with every bound value written in."""
    if request.where is None:
        return []
    return render_conjuncts(request.where, values=dict(enumerate(request.params, 1)))


def _named_terms(request: UpstreamRequest) -> list[str]:
    """The same terms with rule parameters as `:placeholder` and client values written in."""
    if request.where is None:
        return []
    names = {n: s for n, s in enumerate(request.sources, 1) if s != "client"}
    bound = enumerate(zip(request.params, request.sources, strict=True), 1)
    values = {n: value for n, (value, source) in bound if source == "client"}
    return render_conjuncts(request.where, values=values, names=names)


def describe(outcome: UpstreamRequest | Refusal) -> str:
    if isinstance(outcome, Refusal):
        return f"refused {outcome.status} {outcome.code.value} ({outcome.message})"
    where = " AND ".join(bound_terms(outcome)) or "(none: every row)"
    columns = ",".join(outcome.columns) if outcome.columns is not None else "(all)"
    return (
        f"allowed: {outcome.table} where {where} columns {columns} upstream {outcome.upstream.name}"
    )


def _canonical_table(text: str) -> str:
    try:
        return format_relation(*parse_relation(text))
    except IdentifierError:
        return text


def _listed(values: Iterable[str] | None) -> str:
    return "(all)" if values is None else "[" + ", ".join(values) + "]"


def compare(expect: Allowed, request: UpstreamRequest) -> list[str]:
    """Each way the planned request differs from the expectation, as one phrase."""
    found: list[str] = []
    if expect.table is not None and _canonical_table(expect.table) != request.table:
        found.append(f"table: expected {_canonical_table(expect.table)}, got {request.table}")
    actual = bound_terms(request)
    if expect.unfiltered and request.where is not None:
        found.append(f"where: expected none (every row), got {' AND '.join(actual)}")
    if expect.where is not None:
        present = set(actual) | set(_named_terms(request))
        missing = [term for term in expect.where if term not in present]
        if missing:
            got = " AND ".join(actual) or "(none: every row)"
            found.append(f"where: expected a term {' AND '.join(missing)}, got {got}")
    if expect.params is not None and expect.params != request.params:
        found.append(f"params: expected {_listed(expect.params)}, got {_listed(request.params)}")
    if expect.all_columns and request.columns is not None:
        found.append(f"columns: expected (all), got {_listed(request.columns)}")
    if expect.columns is not None and expect.columns != request.columns:
        expected, got = _listed(expect.columns), _listed(request.columns)
        found.append(f"columns: expected {expected}, got {got}")
    if expect.upstream is not None and expect.upstream != request.upstream.name:
        found.append(f"upstream: expected {expect.upstream}, got {request.upstream.name}")
    return found


def run_case(case: Case, rules: Rules) -> CaseResult:
    try:
        identity, outcome = decide(case, rules)
    except CaseError as error:
        return CaseResult(case, None, None, (str(error),))
    expect = case.expect
    if isinstance(expect, Refused):
        if isinstance(outcome, Refusal) and outcome.code == expect.code:
            return CaseResult(case, outcome, identity)
        mismatch = f"expected refused {expect.code.value}, got {describe(outcome)}"
        return CaseResult(case, outcome, identity, (mismatch,))
    if isinstance(outcome, Refusal):
        return CaseResult(case, outcome, identity, (f"expected allowed, got {describe(outcome)}",))
    return CaseResult(case, outcome, identity, tuple(compare(expect, outcome)))


def run_cases(cases: Sequence[Case], rules: Rules) -> list[CaseResult]:
    return [run_case(case, rules) for case in cases]


def untested_pairs(results: Iterable[CaseResult], rules: Rules) -> list[tuple[str, str]]:
    """(shape, role) pairs of the rules that no case exercised, allowed or refused."""
    tested = {
        (result.case.request.shape, result.identity.role)
        for result in results
        if result.identity is not None
    }
    return [
        (shape, role)
        for shape in sorted(rules.shapes)
        for role in sorted(rules.roles)
        if (shape, role) not in tested
    ]
