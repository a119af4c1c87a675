"""Rule where templates: `:user`, `:tenant`, `:role`, `:claims.NAME` become `$n` at load.

Placeholders are found with PostgreSQL's own lexer (pglast.parser.scan), so `':tenant'` inside a
string literal or `"a:user"` inside a quoted identifier is never taken for one. Each distinct
placeholder gets one positional parameter; at request time only its value is bound, so a claim
value never becomes SQL text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from pglast import ast
from pglast.enums import A_Expr_Kind, BoolExprType
from pglast.parser import ParseError, scan

from gateway.sql.expressions import ExpressionError, deparse_expression, parse_expression, walk

IDENTITY_PLACEHOLDERS: Final = ("user", "tenant", "role")
SCOPING_PLACEHOLDERS: Final = frozenset({"user", "tenant"})
_WORD: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COMMENTS: Final = frozenset({"SQL_COMMENT", "C_COMMENT"})


@dataclass(frozen=True, slots=True)
class CompiledWhere:
    """A rule where with `$1..$n` in `sql`; `bindings[i]` names what `$i+1` is bound to."""

    source: str
    sql: str
    bindings: tuple[str, ...]
    scoped: bool

    @property
    def claims(self) -> tuple[str, ...]:
        return tuple(b.removeprefix("claims.") for b in self.bindings if b.startswith("claims."))


def _placeholder_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end-exclusive, binding) for each placeholder, in text order."""
    try:
        tokens = scan(text)
    except ParseError as error:
        raise ExpressionError(str(error.args[0])) from None
    spans: list[tuple[int, int, str]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.name == "PARAM":
            raise ExpressionError(
                "positional parameters ($n) are the gateway's to number; use :user, :tenant, "
                ":role or :claims.NAME",
                token.start,
            )
        if token.name == "ASCII_58" and i + 1 < len(tokens):  # ':'
            word = tokens[i + 1]
            name = text[word.start : word.end + 1]
            if word.start == token.end + 1 and _WORD.fullmatch(name):
                end, binding, i = word.end + 1, name, i + 1
                if name == "claims":
                    dot = tokens[i + 1] if i + 1 < len(tokens) else None
                    claim = tokens[i + 2] if i + 2 < len(tokens) else None
                    if (
                        dot is None
                        or claim is None
                        or dot.name != "ASCII_46"
                        or dot.start != end
                        or claim.start != dot.end + 1
                        or not _WORD.fullmatch(text[claim.start : claim.end + 1])
                    ):
                        raise ExpressionError(
                            ":claims must be followed by .NAME, as in :claims.org", token.start
                        )
                    binding = "claims." + text[claim.start : claim.end + 1]
                    end, i = claim.end + 1, i + 2
                elif name not in IDENTITY_PLACEHOLDERS:
                    raise ExpressionError(
                        f"unknown placeholder :{name}; accepted: :user, :tenant, :role, "
                        ":claims.NAME",
                        token.start,
                    )
                spans.append((token.start, end, binding))
        i += 1
    return spans


def _is_scoping(conjunct: ast.Node, scoping_params: frozenset[int]) -> bool:
    """True when `conjunct` equates a column with :user/:tenant and has no OR/NOT to escape it."""
    equates = False
    for node in walk(conjunct):
        if isinstance(node, ast.BoolExpr) and node.boolop != BoolExprType.AND_EXPR:
            return False
        if isinstance(node, ast.A_Expr) and node.kind in (
            A_Expr_Kind.AEXPR_OP,
            A_Expr_Kind.AEXPR_IN,
        ):
            operator = node.name[-1].sval if node.name else ""
            operands = [
                node.lexpr,
                *(node.rexpr if isinstance(node.rexpr, tuple) else [node.rexpr]),
            ]
            for operand in operands:
                param = operand.arg if isinstance(operand, ast.TypeCast) else operand
                if (
                    isinstance(param, ast.ParamRef)
                    and param.number in scoping_params
                    and operator == "="
                ):
                    equates = True
    return equates


def compile_where(text: str) -> CompiledWhere:
    """Turn a rule where into SQL with numbered parameters, or raise ExpressionError."""
    bindings: list[str] = []
    pieces: list[str] = []
    cursor = 0
    for start, end, binding in _placeholder_spans(text):
        if binding not in bindings:
            bindings.append(binding)
        pieces += [text[cursor:start], f"${bindings.index(binding) + 1}"]
        cursor = end
    pieces.append(text[cursor:])
    node = parse_expression("".join(pieces))
    scoping_params = frozenset(
        number for number, b in enumerate(bindings, 1) if b in SCOPING_PLACEHOLDERS
    )
    conjuncts: tuple[ast.Node, ...] = (node,)
    if isinstance(node, ast.BoolExpr) and node.boolop == BoolExprType.AND_EXPR:
        conjuncts = node.args or ()
    scoped = any(_is_scoping(conjunct, scoping_params) for conjunct in conjuncts)
    return CompiledWhere(
        source=text, sql=deparse_expression(node), bindings=tuple(bindings), scoped=scoped
    )
