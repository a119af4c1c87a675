"""Test oracle: is a forwarded where in Electric's subset, and written in the gateway's form?

What Electric accepts is judged by the one model of its where parser (`gateway/sql/electric/`,
through `check_subset`, which the imitation's parser shares too): what the gateway forwards
must pass that judge again after scoping, negation and rewriting. The form the gateway writes
is judged here, on the tokens, independently of `emit.py`: casts as `::`, no NOT but NOT
IN/LIKE/ILIKE/BETWEEN and IS NOT (Electric 1.0.x fails on a boolean NOT), AND/OR operands in
parentheses, no comments. The property tests judge the gateway's output with it, so a bug in
the emitter shows up as a disagreement.
"""

from __future__ import annotations

from typing import Final

from pglast.parser import ParseError, scan

from gateway.sql.expressions import ExpressionError, parse_expression
from gateway.sql.subset import check_subset

OPENS_OPERAND: Final = {None, "ASCII_40", "AND", "OR", "IN_P"}


def _form_problem(text: str) -> str | None:
    """Casts as `::`, no NOT but NOT IN/LIKE/ILIKE/BETWEEN and IS NOT, AND/OR operands in ()."""
    try:
        tokens = scan(text)
    except ParseError as error:
        return f"does not scan: {error}"
    names = [t.name for t in tokens]
    between = 0
    for i, name in enumerate(names):
        before = names[i - 1] if i else None
        after = names[i + 1] if i + 1 < len(names) else None
        if name in ("CAST", "SQL_COMMENT", "C_COMMENT"):
            return f"{name} in the text"
        if name == "NOT" and before != "IS" and after not in ("IN_P", "LIKE", "ILIKE", "BETWEEN"):
            return "a NOT that negates a condition (Electric 1.0.x fails on it)"
        if name == "BETWEEN":
            between += 1
        elif name == "AND" and between:
            between -= 1
        elif name in ("AND", "OR") and (before != "ASCII_41" or after != "ASCII_40"):
            return f"an {name} whose operands are not both in parentheses"
        elif name == "ASCII_40" and before not in OPENS_OPERAND and after != "ASCII_45":
            return "a parenthesis around a value"
    return None


def electric_where_problem(text: str) -> str | None:
    """None when `text` is a where Electric supports, written in the gateway's form."""
    try:
        node = parse_expression(text)
    except ExpressionError as error:
        return f"does not parse: {error.message}"
    try:
        check_subset(node)
    except ExpressionError as error:
        return f"outside Electric's subset: {error.message}"
    return _form_problem(text)


def is_electric_where(text: str) -> bool:
    return electric_where_problem(text) is None
