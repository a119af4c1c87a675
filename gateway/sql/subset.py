"""The part of SQL a where may use: what every Electric we support evaluates, checked on the tree.

Electric parses a where with PostgreSQL's parser (pg_query) but types and evaluates it with its
own interpreter (sync-service `lib/electric/replication/eval/parser.ex`), which knows far less
than PostgreSQL. Its reference (`@electric-sql/client`, `skills/electric-shapes/references/
where-clause.md`) lists comparisons, `IN`/`NOT IN`, `LIKE`/`ILIKE`, `IS [NOT] NULL`,
`AND`/`OR`/`NOT`, `BETWEEN` and casts. We accept a conservative part of that, so whatever we
forward is something Electric 1.0.10 and 1.7 both evaluate:

- values: a plain column, a `$n` parameter, a literal (string, number, `true`/`false`, `NULL`),
  or a cast of a column or a literal to one of `electric.casts.CAST_TYPES`;
- conditions: comparisons, `[NOT] LIKE`, `[NOT] ILIKE`, `[NOT] IN (...)`, `[NOT] BETWEEN`,
  `IS [NOT] NULL`, `IS [NOT] TRUE/FALSE/UNKNOWN`, `IS [NOT] DISTINCT FROM` (both in 1.0.10's
  parser and 1.7's), `AND`, `OR`, `NOT`, and a bare boolean column, cast or `true`/`false`.

Types are judged as Electric judges them (`electric/`, the one model of its parser, which the
Electric imitation shares), so what Electric refuses with its own 400 is refused here first: a
literal it cannot read as the type it meets (`'2024-03-01'` against a timestamptz,
`'2024-03-01'::timestamp`), a cast it has no function for (`t_ts::date`, `t_ts::text`), a
comparison with no overload, a non-boolean condition. A column's type is known only when the
rules declare it; an undeclared one is judged by form alone.

Refused although Electric documents them: `ANY`/`ALL` and array operators (client filters stay
comparisons of scalar columns) and sub-selects (they read other tables and cannot be proven to
scope rows, #8). Refused because Electric fails on them: a cast on a `$n` parameter (1.0.10
answers 500), type modifiers (`varchar(3)`: Electric ignores them, PostgreSQL does not), and
casts to `numeric`, `char` or `timetz` (not in Electric's types).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from pglast import ast
from pglast.enums import A_Expr_Kind, BoolTestType

from gateway.sql.electric.casts import CAST_TYPES, cast_problem
from gateway.sql.electric.literals import literal_problem
from gateway.sql.electric.overloads import COMPARISONS, LIKES, pick_overload
from gateway.sql.electric.types import UNKNOWN, UNTYPED
from gateway.sql.expressions import MAX_DEPTH, PREFIX_LENGTH, ExpressionError

__all__ = ["CAST_TYPES", "Checked", "check_subset", "operator_name", "position", "type_name"]

_BINARY: Final = {
    A_Expr_Kind.AEXPR_OP: COMPARISONS,
    A_Expr_Kind.AEXPR_LIKE: LIKES,
    A_Expr_Kind.AEXPR_ILIKE: LIKES,
    A_Expr_Kind.AEXPR_IN: frozenset({"=", "<>"}),
    A_Expr_Kind.AEXPR_BETWEEN: frozenset({"BETWEEN"}),
    A_Expr_Kind.AEXPR_NOT_BETWEEN: frozenset({"NOT BETWEEN"}),
    A_Expr_Kind.AEXPR_DISTINCT: frozenset({"="}),
    A_Expr_Kind.AEXPR_NOT_DISTINCT: frozenset({"="}),
}
_LITERALS: Final = (ast.Integer, ast.Float, ast.String, ast.Boolean)
_NAMED: Final[dict[type, str]] = {
    ast.FuncCall: "a function call",
    ast.A_ArrayExpr: "an ARRAY[...]",
    ast.RowExpr: "a row constructor",
    ast.CaseExpr: "CASE",
    ast.CoalesceExpr: "COALESCE",
    ast.MinMaxExpr: "GREATEST/LEAST",
    ast.SQLValueFunction: "a current_* value",
    ast.A_Indirection: "a subscript or field selection",
    ast.CollateClause: "COLLATE",
    ast.A_Star: "*",
}
_KINDS: Final = {
    A_Expr_Kind.AEXPR_OP_ANY: "ANY (arrays are not supported)",
    A_Expr_Kind.AEXPR_OP_ALL: "ALL (arrays are not supported)",
    A_Expr_Kind.AEXPR_NULLIF: "NULLIF",
    A_Expr_Kind.AEXPR_SIMILAR: "SIMILAR TO",
    A_Expr_Kind.AEXPR_BETWEEN_SYM: "BETWEEN SYMMETRIC",
    A_Expr_Kind.AEXPR_NOT_BETWEEN_SYM: "NOT BETWEEN SYMMETRIC",
}
_GRAMMAR: Final = (
    "use comparisons, [NOT] IN, [NOT] BETWEEN, IS [NOT] NULL, IS [NOT] TRUE/FALSE, "
    "IS [NOT] DISTINCT FROM, [NOT] LIKE, [NOT] ILIKE, AND, OR and NOT over columns, literals "
    "and $n parameters"
)
# `String.to_float/1` (Erlang's `binary_to_float`), which Electric applies to every literal that
# PostgreSQL reads as a float: integers beyond 32 bits included (`make_const/3`).
_ERLANG_FLOAT: Final = re.compile(r"-?[0-9]+\.[0-9]+([eE][+-]?[0-9]+)?")
_SYMBOLS: Final = {"~~": "LIKE", "!~~": "NOT LIKE", "~~*": "ILIKE", "!~~*": "NOT ILIKE"}
BOOL_TESTS: Final = {
    BoolTestType.IS_TRUE: "IS TRUE",
    BoolTestType.IS_NOT_TRUE: "IS NOT TRUE",
    BoolTestType.IS_FALSE: "IS FALSE",
    BoolTestType.IS_NOT_FALSE: "IS NOT FALSE",
    BoolTestType.IS_UNKNOWN: "IS UNKNOWN",
    BoolTestType.IS_NOT_UNKNOWN: "IS NOT UNKNOWN",
}


def position(node: object) -> int | None:
    """0-based offset of `node` in the expression text, when the parser recorded one."""
    location = getattr(node, "location", None)
    return location - PREFIX_LENGTH if isinstance(location, int) and location >= 0 else None


def type_name(node: ast.TypeName) -> str:
    """The type's name as PostgreSQL resolves it: `integer` -> int4, `pg_catalog.` dropped."""
    names = [str(n.sval) for n in node.names or () if isinstance(n, ast.String)]
    if len(names) == 2 and names[0] == "pg_catalog":
        names = names[1:]
    return ".".join(names)


def operator_name(node: ast.A_Expr) -> str | None:
    """The operator of `node`, or None when it is schema-qualified (`OPERATOR(public.=)`)."""
    names = node.name or ()
    if len(names) != 1 or not isinstance(names[0], ast.String):
        return None
    return str(names[0].sval)


@dataclass(frozen=True, slots=True)
class _Value:
    """A value as Electric types it: `type` is UNKNOWN for a string literal, NULL or `$n`
    until it meets a type, UNTYPED for a column the rules give no type."""

    type: str
    node: object
    text: str | None = None  # a string literal's text
    param: int | None = None  # a `$n`'s number
    what: str = ""  # how messages name it


@dataclass(frozen=True, slots=True)
class Checked:
    """What checking found: the type Electric reads each `$n` as (where known), and every
    `$n` node (renumbered in place by the caller, without walking the tree again)."""

    params: dict[int, str]
    refs: tuple[ast.ParamRef, ...]


class _Checker:
    def __init__(self, columns: frozenset[str] | None, types: Mapping[str, str]) -> None:
        self.columns = columns
        self.types = types
        self.params: dict[int, str] = {}  # `$n` -> the type Electric reads it as
        self.refs: list[ast.ParamRef] = []

    def refuse(self, node: object, message: str) -> ExpressionError:
        return ExpressionError(message, position(node))

    def unsupported(self, node: object) -> ExpressionError:
        if isinstance(node, ast.SubLink):  # #8: never provably scoped, never pinning
            return self.refuse(
                node,
                "a sub-select (SELECT ...) is not supported in a where: "
                "it reads other tables, so it can be neither checked nor trusted "
                "to scope rows; filter on this table's own columns",
            )
        if isinstance(node, ast.A_Expr) and node.kind in _KINDS:
            construct = _KINDS[node.kind]
        else:
            construct = _NAMED.get(type(node), type(node).__name__)
        return self.refuse(node, f"{construct} is not supported in a where; {_GRAMMAR}")

    def column(self, node: ast.ColumnRef) -> _Value:
        fields = node.fields or ()
        if len(fields) != 1 or not isinstance(fields[0], ast.String):
            raise self.refuse(node, "only plain column names are allowed (no table prefix or *)")
        name = str(fields[0].sval)
        if self.columns is not None and name not in self.columns:
            accepted = ", ".join(sorted(self.columns))
            quoted = [c for c in self.columns if c.lower() == name and c != name]
            hint = (
                f' (write "{quoted[0]}" in double quotes: unquoted names are read in lower case)'
                if quoted
                else ""
            )
            raise self.refuse(
                node, f"column {name!r} may not be used; columns allowed: {accepted}{hint}"
            )
        return _Value(self.types.get(name, UNTYPED), node, what=f"column {name}")

    def cast(self, node: ast.TypeCast) -> _Value:
        assert node.typeName is not None
        typ = node.typeName
        name = type_name(typ)
        if typ.typmods or typ.arrayBounds or typ.setof or typ.pct_type:
            raise self.refuse(
                node,
                f"cast to {name} with modifiers or array bounds is not "
                "supported; cast to the plain type",
            )
        if name not in CAST_TYPES:
            accepted = ", ".join(sorted(CAST_TYPES))
            raise self.refuse(node, f"cast to {name} is not supported; cast to one of {accepted}")
        if isinstance(node.arg, ast.ParamRef):
            raise self.refuse(
                node,
                "a cast on a parameter is not supported; cast the column instead "
                "(`status::text = $1`) or send the value in the column's own form",
            )
        if isinstance(node.arg, ast.ColumnRef):
            arg = self.column(node.arg)
        elif isinstance(node.arg, ast.A_Const) and self.literal(node.arg):
            arg = self.constant(node.arg)
        else:
            raise self.refuse(node, "only a column or a literal may be cast, and only once")
        if arg.text is not None:  # Electric reads the literal's text as the target type
            problem = None if name in ("text", "varchar") else literal_problem(arg.text, name)
            if problem:
                raise self.refuse(node, f"cast to {name}: {problem}")
        else:
            problem = cast_problem(arg.type, name)
            if problem:
                raise self.refuse(node, f"{arg.what}::{name}: {problem}")
        return _Value(name, node, what=f"{arg.what}::{name}")

    def literal(self, node: object) -> bool:
        if not isinstance(node, ast.A_Const):
            return False
        return bool(node.isnull) or isinstance(node.val, _LITERALS)

    def constant(self, node: ast.A_Const) -> _Value:
        value = node.val
        if node.isnull:
            return _Value(UNKNOWN, node, what="NULL")
        if isinstance(value, ast.String):
            text = str(value.sval)
            shown = repr(text if len(text) <= 40 else text[:40] + "...")
            return _Value(UNKNOWN, node, text=text, what=shown)
        if isinstance(value, ast.Integer):
            number = value.ival or 0
            return _Value("int4" if -(2**31) <= number < 2**31 else "int8", node, what=str(number))
        if isinstance(value, ast.Float):
            text = str(value.fval)
            if not _ERLANG_FLOAT.fullmatch(text):
                raise self.refuse(
                    node,
                    f"the number {text}: Electric reads every number but a 32-bit integer with "
                    "Erlang's float parser, which needs digits on both sides of a point (it "
                    f"would fail, a 500); write it like 0.5 or 3000000000.0, or quote it "
                    f"('{text}')",
                )
            return _Value("numeric", node, what=text)
        truth = isinstance(value, ast.Boolean) and bool(value.boolval)
        return _Value("bool", node, what="true" if truth else "false")

    def value(self, node: object) -> _Value:
        if isinstance(node, ast.ColumnRef):
            return self.column(node)
        if isinstance(node, ast.TypeCast):
            return self.cast(node)
        if isinstance(node, ast.ParamRef):
            self.refs.append(node)
            return _Value(UNKNOWN, node, param=node.number or 0, what=f"${node.number}")
        if self.literal(node):
            assert isinstance(node, ast.A_Const)
            return self.constant(node)
        if isinstance(node, ast.A_Const):
            raise self.refuse(node, "bit-string literals are not supported")
        if isinstance(node, ast.A_Expr | ast.BoolExpr | ast.NullTest | ast.BooleanTest):
            raise self.refuse(
                node,
                "compare columns, literals and $n parameters only; "
                "arithmetic and nested conditions are not values",
            )
        raise self.unsupported(node)

    def meets(self, value: _Value, target: str, where: object, against: str) -> None:
        """An unknown `value` takes `target` (Electric's `cast_unknowns`): its text must read
        as one, and a `$n` keeps one type throughout."""
        if value.type != UNKNOWN or target in (UNKNOWN, UNTYPED):
            return
        if value.text is not None and target not in ("text", "varchar"):
            problem = literal_problem(value.text, target)
            if problem:
                raise self.refuse(where, f"{against} ({target}): {problem}")
        if value.param is not None:
            seen = self.params.setdefault(value.param, target)
            if seen != target:
                raise self.refuse(
                    where,
                    f"${value.param} is read as {seen} and as {target}; Electric refuses a "
                    "parameter of two types: send one parameter for each",
                )

    def compare(self, operator: str, left: _Value, right: _Value, node: object) -> None:
        if UNTYPED in (left.type, right.type):  # an undeclared column: judged by form alone
            return
        target = pick_overload(operator, left.type, right.type)
        word = _SYMBOLS.get(operator, operator)
        if target is None:
            shown = [v.what + ("" if v.type == UNKNOWN else f" ({v.type})") for v in (left, right)]
            raise self.refuse(
                node,
                f"{shown[0]} {word} {shown[1]}: Electric has no {word} for these types; "
                "compare values of one type (cast a column to text to compare it as text)",
            )
        self.meets(left, target, node, f"{left.what} compared with {right.what}")
        self.meets(right, target, node, f"{right.what} compared with {left.what}")

    def boolean(self, value: _Value, node: object, context: str) -> None:
        """A value used as a condition must be a boolean (Electric: "not castable to bool")."""
        if value.type in ("bool", UNTYPED):
            return
        if value.type == UNKNOWN:
            self.meets(value, "bool", node, f"{value.what} used {context}")
            return
        raise self.refuse(
            node,
            f"{value.what} is {value.type}, not a boolean, and cannot be used {context}; "
            "compare it with a value",
        )

    def condition(self, node: object, context: str = "as a condition", depth: int = 1) -> None:
        if depth > MAX_DEPTH:  # every later walk (negation, writing) recurses no deeper
            raise ExpressionError(f"the expression nests more than {MAX_DEPTH} levels deep")
        if isinstance(node, ast.BoolExpr):
            for argument in node.args or ():
                self.condition(argument, depth=depth + 1)
        elif isinstance(node, ast.NullTest):
            self.value(node.arg)
        elif isinstance(node, ast.BooleanTest):
            test = BOOL_TESTS.get(node.booltesttype) if node.booltesttype is not None else None
            if test is None or node.arg is None:
                raise self.unsupported(node)
            self.condition(node.arg, f"with {test}", depth + 1)
        elif isinstance(node, ast.A_Expr):
            self.operation(node)
        elif isinstance(node, ast.ColumnRef | ast.TypeCast) or (
            isinstance(node, ast.A_Const) and isinstance(node.val, ast.Boolean)
        ):
            self.boolean(self.value(node), node, context)
        elif isinstance(node, ast.ParamRef | ast.A_Const):
            raise self.refuse(node, "a bare value is not a condition; compare it with a column")
        else:
            raise self.unsupported(node)

    def operation(self, node: ast.A_Expr) -> None:
        kind = node.kind
        if kind not in _BINARY:
            raise self.unsupported(node)
        operator = operator_name(node)
        if node.lexpr is None:
            raise self.refuse(node, f"prefix operator {operator!r} is not supported; {_GRAMMAR}")
        if operator not in _BINARY[kind]:
            raise self.refuse(
                node, f"operator {operator or 'OPERATOR(...)'} is not supported; {_GRAMMAR}"
            )
        left = self.value(node.lexpr)
        if kind in (A_Expr_Kind.AEXPR_OP, A_Expr_Kind.AEXPR_LIKE, A_Expr_Kind.AEXPR_ILIKE):
            self.compare(operator, left, self.value(node.rexpr), node)
        elif kind in (A_Expr_Kind.AEXPR_DISTINCT, A_Expr_Kind.AEXPR_NOT_DISTINCT):
            self.compare("<>", left, self.value(node.rexpr), node)
        elif not isinstance(node.rexpr, tuple):  # `x IN (SELECT ...)`: a sub-select
            raise self.unsupported(node.rexpr)
        elif kind == A_Expr_Kind.AEXPR_IN:
            for item in node.rexpr:
                self.compare("=", left, self.value(item), node)
        else:  # [NOT] BETWEEN low AND high: `low <= x` and `x <= high`, as Electric reads it
            low, high = (self.value(item) for item in node.rexpr)
            self.compare("<=", low, left, node)
            self.compare("<=", left, high, node)


def check_subset(
    node: ast.Node,
    columns: frozenset[str] | None = None,
    types: Mapping[str, str] | None = None,
) -> Checked:
    """Raise ExpressionError (naming the construct) unless `node` is in the supported subset.

    `columns` limits the columns it may name (None: any plain column); `types` gives the type
    of those the rules declare. Nesting deeper than `MAX_DEPTH` is refused on the way down.
    """
    checker = _Checker(columns, types or {})
    checker.condition(node)
    return Checked(checker.params, tuple(checker.refs))
