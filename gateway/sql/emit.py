"""Write a checked where (or order_by) tree as the text the gateway forwards to Electric.

Our own writer instead of pglast's deparser, so the forwarded form is one we chose and can keep
stable across pglast versions: every operand of AND, OR and NOT in parentheses
(`(a = 1) AND ((b = 2) OR (c = 3))`), casts as `column::type` and `'5'::int4`, literals as
standard SQL strings and numbers, keywords quoted as identifiers. It writes only the subset
`subset.check_subset` accepts, and refuses to return text that does not parse back to the same
tree (compared after the normalisations the form itself makes), so a writer bug can never change
what a where means.
"""

from __future__ import annotations

import json
from typing import Any, Final

from pglast import ast
from pglast.enums import A_Expr_Kind, BoolExprType, NullTestType, SortByDir, SortByNulls
from pglast.keywords import COL_NAME_KEYWORDS, RESERVED_KEYWORDS, TYPE_FUNC_NAME_KEYWORDS
from pglast.parser import ParseError, parse_sql_json

from gateway.sql.expressions import ExpressionError
from gateway.sql.identifiers import quote_identifier
from gateway.sql.subset import BOOL_TESTS, operator_name, type_name

_PREFIX: Final = "SELECT FROM _gw WHERE "
_KEYWORDS: Final = RESERVED_KEYWORDS | COL_NAME_KEYWORDS | TYPE_FUNC_NAME_KEYWORDS
_LIKE_WORDS: Final = {"~~": "LIKE", "!~~": "NOT LIKE", "~~*": "ILIKE", "!~~*": "NOT ILIKE"}
_DISTINCT: Final = {
    A_Expr_Kind.AEXPR_DISTINCT: "IS DISTINCT FROM",
    A_Expr_Kind.AEXPR_NOT_DISTINCT: "IS NOT DISTINCT FROM",
}
_DIRECTIONS: Final[dict[SortByDir | None, str]] = {
    SortByDir.SORTBY_ASC: " ASC",
    SortByDir.SORTBY_DESC: " DESC",
}
_NULLS: Final[dict[SortByNulls | None, str]] = {
    SortByNulls.SORTBY_NULLS_FIRST: " NULLS FIRST",
    SortByNulls.SORTBY_NULLS_LAST: " NULLS LAST",
}


def column_name(node: ast.ColumnRef) -> str:
    """A plain column, quoted when PostgreSQL would not read it back bare (case, keywords)."""
    fields = node.fields or ()
    if len(fields) != 1 or not isinstance(fields[0], ast.String):
        raise ExpressionError("only plain column names can be written")
    name = str(fields[0].sval)
    quoted = quote_identifier(name)
    return f'"{name}"' if quoted == name and name in _KEYWORDS else quoted


def _literal(node: ast.A_Const) -> str:
    if node.isnull:
        return "NULL"
    value = node.val
    if isinstance(value, ast.Boolean):
        return "true" if value.boolval else "false"
    if isinstance(value, ast.Integer):
        return str(value.ival or 0)
    if isinstance(value, ast.Float):
        return str(value.fval)
    if isinstance(value, ast.String):
        return "'" + str(value.sval).replace("'", "''") + "'"
    raise ExpressionError(f"cannot write the literal {value!r}")


def _value(node: object) -> str:
    if isinstance(node, ast.ColumnRef):
        return column_name(node)
    if isinstance(node, ast.ParamRef):
        return f"${node.number}"
    if isinstance(node, ast.A_Const):
        return _literal(node)
    if isinstance(node, ast.TypeCast) and node.typeName is not None:
        operand = _value(node.arg)
        if operand.startswith("-"):  # `-1::int4` would read as -(1::int4)
            operand = f"({operand})"
        return f"{operand}::{type_name(node.typeName)}"
    raise ExpressionError(f"cannot write {type(node).__name__} as a value")


def _operands(node: ast.BoolExpr) -> list[ast.Node]:
    """AND (OR) operands with nested ANDs (ORs) spliced in: one flat list, as PostgreSQL reads."""
    out: list[ast.Node] = []
    for arg in node.args or ():
        nested = isinstance(arg, ast.BoolExpr) and arg.boolop == node.boolop
        out += _operands(arg) if nested else [arg]
    return out


def _condition(node: object) -> str:
    if isinstance(node, ast.BoolExpr):
        args = node.args or ()
        if node.boolop == BoolExprType.NOT_EXPR:
            return f"NOT ({_condition(args[0])})"
        word = " AND " if node.boolop == BoolExprType.AND_EXPR else " OR "
        return word.join(f"({_condition(a)})" for a in _operands(node))
    if isinstance(node, ast.NullTest):
        test = "IS NULL" if node.nulltesttype == NullTestType.IS_NULL else "IS NOT NULL"
        return f"{_value(node.arg)} {test}"
    if isinstance(node, ast.BooleanTest):
        arg = node.arg
        plain = isinstance(arg, ast.ColumnRef | ast.TypeCast | ast.A_Const)
        operand = _value(arg) if plain else f"({_condition(arg)})"
        return f"{operand} {BOOL_TESTS[node.booltesttype]}"  # type: ignore[index]
    if isinstance(node, ast.A_Expr):
        return _operation(node)
    return _value(node)


def _operation(node: ast.A_Expr) -> str:
    left, operator, kind = _value(node.lexpr), operator_name(node), node.kind
    if kind == A_Expr_Kind.AEXPR_OP and operator is not None:
        return f"{left} {operator} {_value(node.rexpr)}"
    if kind in _DISTINCT and operator == "=":
        return f"{left} {_DISTINCT[kind]} {_value(node.rexpr)}"
    if kind in (A_Expr_Kind.AEXPR_LIKE, A_Expr_Kind.AEXPR_ILIKE) and operator in _LIKE_WORDS:
        return f"{left} {_LIKE_WORDS[operator]} {_value(node.rexpr)}"
    items = node.rexpr if isinstance(node.rexpr, tuple) else ()
    if kind == A_Expr_Kind.AEXPR_IN and operator in ("=", "<>"):
        words = "IN" if operator == "=" else "NOT IN"
        return f"{left} {words} ({', '.join(_value(item) for item in items)})"
    if kind in (A_Expr_Kind.AEXPR_BETWEEN, A_Expr_Kind.AEXPR_NOT_BETWEEN) and len(items) == 2:
        return f"{left} {operator} {_value(items[0])} AND {_value(items[1])}"
    raise ExpressionError(f"cannot write operator {operator!r}")


def _canonical(node: object) -> object:
    """What the written form preserves, as plain tuples: nested ANDs (ORs) flattened,
    `pg_catalog.` dropped, locations ignored. `_read_back` builds the same from the JSON."""
    if isinstance(node, ast.BoolExpr):
        if node.boolop == BoolExprType.NOT_EXPR:
            return ("not", _canonical((node.args or ())[0]))
        return (_name(node.boolop), tuple(_canonical(arg) for arg in _operands(node)))
    if isinstance(node, ast.TypeCast) and node.typeName is not None:
        typ = node.typeName
        modifiers = bool(typ.typmods), bool(typ.arrayBounds)
        return ("cast", _canonical(node.arg), type_name(typ), modifiers)
    if isinstance(node, ast.A_Expr):
        rexpr = node.rexpr
        right = (
            tuple(_canonical(r) for r in rexpr) if isinstance(rexpr, tuple) else _canonical(rexpr)
        )
        return ("expr", _name(node.kind), operator_name(node), _canonical(node.lexpr), right)
    if isinstance(node, ast.NullTest):
        return ("null", _name(node.nulltesttype), _canonical(node.arg))
    if isinstance(node, ast.BooleanTest):
        return ("test", _name(node.booltesttype), _canonical(node.arg))
    if isinstance(node, ast.ColumnRef):
        fields = node.fields or ()
        return ("col", tuple(str(f.sval) if isinstance(f, ast.String) else "*" for f in fields))
    if isinstance(node, ast.ParamRef):
        return ("param", node.number or 0)
    if isinstance(node, ast.A_Const):
        value = node.val
        if node.isnull:
            return ("const", "null", None)
        if isinstance(value, ast.Integer):
            return ("const", "int", value.ival or 0)
        if isinstance(value, ast.Float):
            return ("const", "float", str(value.fval))
        if isinstance(value, ast.String):
            return ("const", "str", str(value.sval or ""))
        if isinstance(value, ast.Boolean):
            return ("const", "bool", bool(value.boolval))
    return ("other", type(node).__name__)


def _name(value: object) -> str:
    return str(getattr(value, "name", value))


def _read_back(item: Any) -> object:
    """`_canonical` of a node of libpg_query's JSON tree (the emitted text, parsed again)."""
    if not isinstance(item, dict) or len(item) != 1:
        return ("other", type(item).__name__)
    ((kind, body),) = item.items()
    if kind == "BoolExpr":
        args = body.get("args", [])
        if body.get("boolop") == "NOT_EXPR":
            return ("not", _read_back(args[0]))
        return (body.get("boolop"), tuple(_read_back(a) for a in _json_operands(body)))
    if kind == "TypeCast":
        typ = body.get("typeName", {})
        names = [n.get("String", {}).get("sval", "") for n in typ.get("names", [])]
        if len(names) == 2 and names[0] == "pg_catalog":
            names = names[1:]
        modifiers = bool(typ.get("typmods")), bool(typ.get("arrayBounds"))
        return ("cast", _read_back(body.get("arg")), ".".join(names), modifiers)
    if kind == "A_Expr":
        names = body.get("name", [])
        operator = (
            names[0]["String"].get("sval") if len(names) == 1 and "String" in names[0] else None
        )
        rexpr = body.get("rexpr")
        if isinstance(rexpr, dict) and "List" in rexpr:
            right: object = tuple(_read_back(r) for r in rexpr["List"].get("items", []))
        else:
            right = _read_back(rexpr)
        lexpr = _read_back(body["lexpr"]) if "lexpr" in body else ("other", "NoneType")
        return ("expr", body.get("kind"), operator, lexpr, right)
    if kind == "NullTest":
        return ("null", body.get("nulltesttype"), _read_back(body.get("arg")))
    if kind == "BooleanTest":
        return ("test", body.get("booltesttype"), _read_back(body.get("arg")))
    if kind == "ColumnRef":
        fields = body.get("fields", [])
        return ("col", tuple(f["String"].get("sval", "") if "String" in f else "*" for f in fields))
    if kind == "ParamRef":
        return ("param", body.get("number", 0))
    if kind == "A_Const":
        if body.get("isnull"):
            return ("const", "null", None)
        for field, label, default in _CONSTANTS:
            if field in body:
                return ("const", label, body[field].get(field, default))
    return ("other", kind)


_CONSTANTS: Final = (
    ("ival", "int", 0),
    ("fval", "float", ""),
    ("sval", "str", ""),
    ("boolval", "bool", False),
)


def _json_operands(body: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for arg in body.get("args", []):
        nested = arg.get("BoolExpr") if isinstance(arg, dict) else None
        out += (
            _json_operands(nested) if nested and nested.get("boolop") == body["boolop"] else [arg]
        )
    return out


def _parse_back(text: str) -> object:
    """The emitted text parsed again by libpg_query, straight to JSON: no second AST is built
    (an AST costs ~2 µs a node in Python; this ~0.4), so the check costs a fraction of the
    first parse (#17)."""
    try:
        parsed = json.loads(parse_sql_json(_PREFIX + text))
    except ParseError as error:
        raise ExpressionError(f"the written where does not parse: {error.args[0]}") from None
    statements = parsed.get("stmts", [])
    select = statements[0].get("stmt", {}).get("SelectStmt", {}) if len(statements) == 1 else {}
    return _read_back(select.get("whereClause"))


def emit_where(node: ast.Node) -> str:
    """The forwarded text of `node`; ExpressionError when it would not read back the same."""
    text = _condition(node)
    if _parse_back(text) != _canonical(node):
        raise ExpressionError("the where does not survive a round trip through the parser")
    return text


def emit_order_by(items: tuple[ast.SortBy, ...]) -> str:
    """`col [ASC|DESC] [NULLS FIRST|LAST], ...` from checked SortBy items of plain columns."""
    out = []
    for item in items:
        if not isinstance(item.node, ast.ColumnRef):
            raise ExpressionError("only columns can be written in an order_by")
        direction = _DIRECTIONS.get(item.sortby_dir, "")
        nulls = _NULLS.get(item.sortby_nulls, "")
        out.append(f"{column_name(item.node)}{direction}{nulls}")
    return ", ".join(out)
