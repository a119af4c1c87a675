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

from pglast.parser import ParseError, scan

from gateway.sql.emit import emit_where
from gateway.sql.expressions import ExpressionError, parse_expression
from gateway.sql.negation import push_negations
from gateway.sql.scoping import find_pinning
from gateway.sql.subset import check_subset

IDENTITY_PLACEHOLDERS: Final = ("user", "tenant", "role")
SCOPING_PLACEHOLDERS: Final = frozenset({"user", "tenant"})
_WORD: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COMMENTS: Final = frozenset({"SQL_COMMENT", "C_COMMENT"})


@dataclass(frozen=True, slots=True)
class CompiledWhere:
    """A rule where with `$1..$n` in `sql`; `bindings[i]` names what `$i+1` is bound to.

    `scoped`: a top-level AND term pins the caller (`scoping.py`); if not, `pinning_hint` says
    what came nearest and why it does not count.
    """

    source: str
    sql: str
    bindings: tuple[str, ...]
    scoped: bool
    pinning_hint: str | None = None

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


def compile_where(text: str) -> CompiledWhere:
    """Turn a rule where into SQL with numbered parameters, or raise ExpressionError.

    The where must be in the subset Electric supports (`subset.py`, no sub-selects); the lint
    of #8 decides `scoped` on the tree as written, before `push_negations` rewrites it.
    """
    bindings: list[str] = []
    pieces: list[str] = []
    shifts: list[tuple[int, int]] = []  # (offset in the compiled text, shift back to `text`)
    cursor = length = shift = 0
    for start, end, binding in _placeholder_spans(text):
        if binding not in bindings:
            bindings.append(binding)
        param = f"${bindings.index(binding) + 1}"
        pieces += [text[cursor:start], param]
        length += start - cursor + len(param)
        shift += end - start - len(param)
        shifts.append((length, shift))
        cursor = end
    pieces.append(text[cursor:])
    scoping = {n: b for n, b in enumerate(bindings, 1) if b in SCOPING_PLACEHOLDERS}
    try:
        node = parse_expression("".join(pieces))
        check_subset(node)
        pinning = find_pinning(node, scoping)
        sql = emit_where(push_negations(node))
    except ExpressionError as error:
        at = error.position
        if at is not None:
            at += max((s for offset, s in shifts if offset <= at), default=0)
        raise ExpressionError(error.message, at) from None
    return CompiledWhere(
        source=text,
        sql=sql,
        bindings=tuple(bindings),
        scoped=pinning.pinned,
        pinning_hint=pinning.hint,
    )
