"""A where as its top-level AND terms, each in one canonical text, so wheres compare by meaning.

Tests and the diff never compare where clauses as strings: both sides are parsed by
PostgreSQL's parser (pglast), split into their top-level `AND` terms and deparsed. A `$n`
parameter is written either as the value bound to it (a string literal, as Electric receives
it) or as the placeholder it came from (`:tenant`, `:user`, `:claims.org`), so `$n` numbering,
spacing, parentheses and the order of terms never matter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from pglast import ast
from pglast.enums import BoolExprType
from pglast.parser import scan
from pglast.stream import RawStream

from gateway.sql.expressions import parse_expression
from gateway.sql.placeholders import compile_where

_PARAM: Final = "PARAM"


def _terms(node: ast.Node) -> list[ast.Node]:
    if isinstance(node, ast.BoolExpr) and node.boolop == BoolExprType.AND_EXPR:
        return [term for argument in node.args or () for term in _terms(argument)]
    return [node]


def _literal(value: str) -> ast.A_Const:
    return ast.A_Const(val=ast.String(sval=value))


def _bind(node: object, values: Mapping[int, str]) -> object:
    """`node` with every `$n` in `values` replaced by a string literal (in place where it can)."""
    if isinstance(node, ast.ParamRef):
        number = node.number or 0
        return _literal(values[number]) if number in values else node
    if isinstance(node, tuple):
        return tuple(_bind(item, values) for item in node)
    if isinstance(node, ast.Node):
        for attribute in node:
            setattr(node, attribute, _bind(getattr(node, attribute), values))
    return node


def _name_params(text: str, names: Mapping[int, str]) -> str:
    """Deparsed `text` with each `$n` token in `names` written `:name` (found by the lexer, so
    a `'$1'` inside a string literal is left alone)."""
    out, cursor = [], 0
    for token in scan(text):
        if token.name == _PARAM:
            number = int(text[token.start + 1 : token.end + 1])
            if number in names:
                out += [text[cursor : token.start], f":{names[number]}"]
                cursor = token.end + 1
    return "".join([*out, text[cursor:]])


def render_conjuncts(
    sql: str, *, values: Mapping[int, str] | None = None, names: Mapping[int, str] | None = None
) -> list[str]:
    """The top-level AND terms of `sql` in canonical text; `$n` in `values` become string
    literals, `$n` in `names` become `:name`. Raises gateway.sql ExpressionError."""
    terms = []
    for term in _terms(parse_expression(sql)):
        bound = _bind(term, values or {})
        assert isinstance(bound, ast.Node)
        text = _name_params(RawStream()(bound), names or {})
        is_or = isinstance(bound, ast.BoolExpr) and bound.boolop == BoolExprType.OR_EXPR
        terms.append(f"({text})" if is_or else text)  # so terms can be joined with AND
    return terms


def expected_conjuncts(text: str) -> list[str]:
    """A test's expected where (values and `:placeholders` allowed) as canonical terms."""
    compiled = compile_where(text)
    names = dict(enumerate(compiled.bindings, 1))
    return render_conjuncts(compiled.sql, names=names)
