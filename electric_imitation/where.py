"""Positional parameters (`$n`) in a where clause: find them, check their keys, bind them.

The where (rebuilt from its parse tree by `where_check`) is spliced into our SQL as Electric
does; its values never are. Parameters go
to PostgreSQL as untyped strings (psycopg sends `str` with the unknown type) so the server
infers each type from its use, like Electric's typed literals. A parameter the where does not
use is sent as `text`, because PostgreSQL cannot infer a type for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from psycopg import AsyncConnection
from psycopg.types.string import StrDumper

from electric_imitation.errors import InvalidRequestError

_IDENT_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$")


class UnusedParam(str):
    """A parameter value the where never references; dumped as `text` (see module docstring)."""

    __slots__ = ()


def register_param_dumpers(conn: AsyncConnection[object]) -> None:
    """Teach a connection to send `UnusedParam` as text while plain `str` stays untyped."""
    conn.adapters.register_dumper(UnusedParam, StrDumper)


@dataclass(frozen=True, slots=True)
class ParamRef:
    """One `$n` occurrence: its number and where it sits in the where text (0-based, chars)."""

    number: int
    start: int
    end: int


def find_param_refs(where: str) -> list[ParamRef]:
    """Every `$n` outside string literals, quoted identifiers, dollar quotes and comments."""
    refs: list[ParamRef] = []
    i, n = 0, len(where)
    while i < n:
        ch = where[i]
        if ch == "'":
            i = _skip_quoted(where, i, "'", backslash=i > 0 and where[i - 1] in "eE")
        elif ch == '"':
            i = _skip_quoted(where, i, '"', backslash=False)
        elif where.startswith("--", i):
            newline = where.find("\n", i)
            i = n if newline == -1 else newline + 1
        elif where.startswith("/*", i):
            close = where.find("*/", i + 2)
            i = n if close == -1 else close + 2
        elif ch == "$":
            if (
                i + 1 < n
                and where[i + 1].isdigit()
                and (i == 0 or where[i - 1] not in _IDENT_CHARS)
            ):
                end = i + 1
                while end < n and where[end].isdigit():
                    end += 1
                refs.append(ParamRef(int(where[i + 1 : end]), i, end))
                i = end
            else:
                i = _skip_dollar_quote(where, i)
        else:
            i += 1
    return refs


def check_param_keys(params: dict[str, str]) -> None:
    """1.7's parameter rules (`shape/validators.ex`): numeric keys, numbered 1..n."""
    numbers: list[int] = []
    for key in params:
        if not key.lstrip("+-").isdigit():
            raise InvalidRequestError({"params": ["Parameters can only use numbers as keys"]})
        numbers.append(int(key))
    if sorted(numbers) != list(range(1, len(numbers) + 1)):
        raise InvalidRequestError(
            {"params": ["Parameters must be numbered sequentially, starting from 1"]}
        )


def bind_values(where: str | None, params: dict[str, str]) -> list[str]:
    """Values for `$1..$n` in order, typed as the module docstring explains."""
    used = {ref.number for ref in find_param_refs(where)} if where else set()
    ordered = sorted((int(key), value) for key, value in params.items())
    return [value if number in used else UnusedParam(value) for number, value in ordered]


def renumber(where: str, shift: int) -> str:
    """The where with every `$n` replaced by `$(n + shift)`, so two wheres can share a query."""
    if shift == 0:
        return where
    pieces: list[str] = []
    last = 0
    for ref in find_param_refs(where):
        pieces.append(where[last : ref.start])
        pieces.append(f"${ref.number + shift}")
        last = ref.end
    pieces.append(where[last:])
    return "".join(pieces)


def _skip_quoted(text: str, start: int, quote: str, *, backslash: bool) -> int:
    i = start + 1
    while i < len(text):
        ch = text[i]
        if backslash and ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return len(text)


def _skip_dollar_quote(text: str, start: int) -> int:
    close = text.find("$", start + 1)
    tag = text[start : close + 1] if close != -1 else ""
    body = tag[1:-1]
    if close == -1 or not all(ch.isalnum() or ch == "_" for ch in body) or body[:1].isdigit():
        return start + 1
    if start > 0 and text[start - 1] in _IDENT_CHARS:
        return start + 1
    end = text.find(tag, close + 1)
    return len(text) if end == -1 else end + len(tag)
