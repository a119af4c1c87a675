"""The scoping lint's test: does a rule where pin every row to the caller? (#8)

A where pins the caller only through a term of its top-level AND that compares a plain column
with `:tenant` or `:user`: `column = :tenant` (either side of `=`), or `column IN (:tenant,
:user)` whose list holds nothing but those placeholders. Nothing else counts, however close it
reads: a term under OR or NOT (`tenant_id = :tenant OR true`), an IN list with another value
(`tenant_id IN (:tenant, 'globex')`), a placeholder compared with itself (`:tenant = :tenant`),
a cast or function of the column, another operator, a constant (`tenant_id = 'acme'`).
Sub-selects never reach this test: `subset.check_subset` refuses them in every where.

When nothing pins, `hint` says what came nearest and why it does not count, for `check`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pglast import ast
from pglast.enums import A_Expr_Kind, BoolExprType

from gateway.sql.expressions import walk
from gateway.sql.subset import operator_name


@dataclass(frozen=True, slots=True)
class Pinning:
    pinned: bool
    hint: str | None = None  # when not pinned: the nearest term and why it does not pin


def _column(node: object) -> str | None:
    if isinstance(node, ast.ColumnRef) and len(node.fields or ()) == 1:
        field = (node.fields or ())[0]
        return str(field.sval) if isinstance(field, ast.String) else None
    return None


def _placeholder(node: object, scoping: Mapping[int, str]) -> str | None:
    number = node.number if isinstance(node, ast.ParamRef) else None
    return None if number is None or number not in scoping else ":" + scoping[number]


def _hint(term: ast.Node, scoping: Mapping[int, str]) -> str | None:
    """Why a top-level term that mentions :tenant or :user does not pin; None when it does."""
    mentioned = [p for n in walk(term) if (p := _placeholder(n, scoping))]
    if not mentioned:
        return "no term compares a column with :tenant or :user"
    if not isinstance(term, ast.A_Expr):
        return f"{mentioned[0]} appears only under OR or NOT, which do not restrict every row"
    operator = operator_name(term)
    if term.kind == A_Expr_Kind.AEXPR_IN and operator == "=":
        column = _column(term.lexpr)
        items = term.rexpr if isinstance(term.rexpr, tuple) else ()
        if column is None:
            return "the IN compares an expression, not a plain column"
        if not all(_placeholder(item, scoping) for item in items):
            return f"`{column} IN (...)` lists values other than :tenant and :user"
        return None
    if term.kind in (A_Expr_Kind.AEXPR_DISTINCT, A_Expr_Kind.AEXPR_NOT_DISTINCT):
        return f"{mentioned[0]} is compared with IS [NOT] DISTINCT FROM; only `=` or IN pins"
    if term.kind != A_Expr_Kind.AEXPR_OP or operator != "=":
        return f"{mentioned[0]} is compared with {operator or 'an operator'}; only `=` or IN pins"
    sides = (term.lexpr, term.rexpr)
    if all(_placeholder(side, scoping) for side in sides):
        return f"`{mentioned[0]} = {mentioned[-1]}` compares placeholders, not a column"
    if not any(_column(side) for side in sides):
        return f"{mentioned[0]} is compared with an expression, not a plain column"
    return None


def _terms(node: ast.Node) -> list[ast.Node]:
    """The terms of the top-level AND, nested ANDs (`a AND (b AND c)`) included."""
    if isinstance(node, ast.BoolExpr) and node.boolop == BoolExprType.AND_EXPR:
        return [term for arg in node.args or () for term in _terms(arg)]
    return [node]


def find_pinning(node: ast.Node, scoping: Mapping[int, str]) -> Pinning:
    """`scoping` maps the `$n` bound to the caller (:tenant, :user) to its placeholder name."""
    hints = [_hint(term, scoping) for term in _terms(node)]
    if any(hint is None for hint in hints):
        return Pinning(pinned=True)
    specific = [h for h in hints if h and not h.startswith("no term")]
    return Pinning(pinned=False, hint=(specific or hints)[0])
