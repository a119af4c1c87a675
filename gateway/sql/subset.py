"""The part of SQL a where may use: what Electric documents as supported, checked on the tree.

Electric parses a where with PostgreSQL's parser (pg_query) but evaluates it with its own
interpreter (sync-service `lib/electric/replication/eval/parser.ex`), which knows far less than
PostgreSQL. Its reference (`@electric-sql/client`, `skills/electric-shapes/references/
where-clause.md`) lists comparisons, `IN`/`NOT IN`, `LIKE`/`ILIKE`, `IS [NOT] NULL`,
`AND`/`OR`/`NOT`, `BETWEEN` and casts. We accept a conservative part of that, so whatever we
forward is something every Electric we know of evaluates:

- values: a plain column, a `$n` parameter, a literal (string, number, `true`/`false`, `NULL`),
  or a cast of a column or a literal to one of `CAST_TYPES` (Electric's `@valid_types`);
- conditions: comparisons, `[NOT] LIKE`, `[NOT] ILIKE`, `[NOT] IN (...)`, `[NOT] BETWEEN`,
  `IS [NOT] NULL`, `AND`, `OR`, `NOT`, and a bare boolean column, cast or `true`/`false`.

Refused although Electric documents them: `ANY`/`ALL` and array operators (client filters stay
comparisons of scalar columns) and sub-selects (they read other tables and cannot be proven to
scope rows, #8). Refused because Electric fails on them: a cast on a `$n` parameter (1.0.10
answers 500), type modifiers (`varchar(3)`: Electric ignores them, PostgreSQL does not), and
casts to `numeric`, `char` or `timetz` (not in Electric's types).
"""

from __future__ import annotations

from typing import Final

from pglast import ast
from pglast.enums import A_Expr_Kind

from gateway.sql.expressions import PREFIX_LENGTH, ExpressionError

CAST_TYPES: Final = frozenset(
    {
        "bool", "int2", "int4", "int8", "float4", "float8", "text", "varchar", "date", "time",
        "timestamp", "timestamptz", "interval", "uuid",
    }
)  # fmt: skip
COMPARISONS: Final = frozenset({"=", "<>", "<", ">", "<=", ">="})
LIKES: Final = frozenset({"~~", "!~~", "~~*", "!~~*"})
_BINARY: Final = {
    A_Expr_Kind.AEXPR_OP: COMPARISONS,
    A_Expr_Kind.AEXPR_LIKE: LIKES,
    A_Expr_Kind.AEXPR_ILIKE: LIKES,
    A_Expr_Kind.AEXPR_IN: frozenset({"=", "<>"}),
    A_Expr_Kind.AEXPR_BETWEEN: frozenset({"BETWEEN"}),
    A_Expr_Kind.AEXPR_NOT_BETWEEN: frozenset({"NOT BETWEEN"}),
}
_LITERALS: Final = (ast.Integer, ast.Float, ast.String, ast.Boolean)
_NAMED: Final[dict[type, str]] = {
    ast.FuncCall: "a function call",
    ast.A_ArrayExpr: "an ARRAY[...]",
    ast.RowExpr: "a row constructor",
    ast.CaseExpr: "CASE",
    ast.CoalesceExpr: "COALESCE",
    ast.MinMaxExpr: "GREATEST/LEAST",
    ast.BooleanTest: "IS [NOT] TRUE/FALSE/UNKNOWN",
    ast.SQLValueFunction: "a current_* value",
    ast.A_Indirection: "a subscript or field selection",
    ast.CollateClause: "COLLATE",
    ast.A_Star: "*",
}
_KINDS: Final = {
    A_Expr_Kind.AEXPR_OP_ANY: "ANY (arrays are not supported)",
    A_Expr_Kind.AEXPR_OP_ALL: "ALL (arrays are not supported)",
    A_Expr_Kind.AEXPR_DISTINCT: "IS DISTINCT FROM",
    A_Expr_Kind.AEXPR_NOT_DISTINCT: "IS NOT DISTINCT FROM",
    A_Expr_Kind.AEXPR_NULLIF: "NULLIF",
    A_Expr_Kind.AEXPR_SIMILAR: "SIMILAR TO",
    A_Expr_Kind.AEXPR_BETWEEN_SYM: "BETWEEN SYMMETRIC",
    A_Expr_Kind.AEXPR_NOT_BETWEEN_SYM: "NOT BETWEEN SYMMETRIC",
}
_GRAMMAR: Final = (
    "use comparisons, [NOT] IN, [NOT] BETWEEN, IS [NOT] NULL, [NOT] LIKE, [NOT] ILIKE, "
    "AND, OR and NOT over columns, literals and $n parameters"
)


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


class _Checker:
    def __init__(self, columns: frozenset[str] | None) -> None:
        self.columns = columns

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

    def column(self, node: ast.ColumnRef) -> None:
        fields = node.fields or ()
        if len(fields) != 1 or not isinstance(fields[0], ast.String):
            raise self.refuse(node, "only plain column names are allowed (no table prefix or *)")
        name = str(fields[0].sval)
        if self.columns is not None and name not in self.columns:
            accepted = ", ".join(sorted(self.columns))
            raise self.refuse(node, f"column {name!r} may not be used; columns allowed: {accepted}")

    def cast(self, node: ast.TypeCast) -> None:
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
            self.column(node.arg)
        elif not self.literal(node.arg):
            raise self.refuse(node, "only a column or a literal may be cast, and only once")

    def literal(self, node: object) -> bool:
        if not isinstance(node, ast.A_Const):
            return False
        return bool(node.isnull) or isinstance(node.val, _LITERALS)

    def value(self, node: object) -> None:
        if isinstance(node, ast.ColumnRef):
            self.column(node)
        elif isinstance(node, ast.TypeCast):
            self.cast(node)
        elif not (isinstance(node, ast.ParamRef) or self.literal(node)):
            if isinstance(node, ast.A_Const):
                raise self.refuse(node, "bit-string literals are not supported")
            if isinstance(node, ast.A_Expr | ast.BoolExpr | ast.NullTest):
                raise self.refuse(
                    node,
                    "compare columns, literals and $n parameters only; "
                    "arithmetic and nested conditions are not values",
                )
            raise self.unsupported(node)

    def condition(self, node: object) -> None:
        if isinstance(node, ast.BoolExpr):
            for argument in node.args or ():
                self.condition(argument)
        elif isinstance(node, ast.NullTest):
            self.value(node.arg)
        elif isinstance(node, ast.A_Expr):
            self.operation(node)
        elif isinstance(node, ast.ColumnRef | ast.TypeCast) or (
            isinstance(node, ast.A_Const) and isinstance(node.val, ast.Boolean)
        ):
            self.value(node)
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
        self.value(node.lexpr)
        if kind in (A_Expr_Kind.AEXPR_OP, A_Expr_Kind.AEXPR_LIKE, A_Expr_Kind.AEXPR_ILIKE):
            self.value(node.rexpr)
        elif isinstance(node.rexpr, tuple):
            for item in node.rexpr:
                self.value(item)
        else:  # `x IN (SELECT ...)`: a sub-select, never a list
            raise self.unsupported(node.rexpr)


def check_subset(node: ast.Node, columns: frozenset[str] | None = None) -> None:
    """Raise ExpressionError (naming the construct) unless `node` is in the supported subset.

    `columns` limits the columns it may name (None: any plain column).
    """
    _Checker(columns).condition(node)
