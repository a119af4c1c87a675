"""PostgreSQL identifier parsing with Electric's rules and messages (`postgres/identifiers.ex`).

Unquoted names are downcased (ASCII only, like PostgreSQL) and limited to letters, marks,
digits, `_` and `$`; double quotes keep case and allow anything, `""` escapes a quote.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

NAMEDATALEN: Final = 63
ZERO_LENGTH: Final = "Invalid zero-length delimited identifier"

# Electric splits `columns` on commas followed by an even number of double quotes.
_COMMA_OUTSIDE_QUOTES: Final = re.compile(r',(?=(?:[^"]*"[^"]*")*[^"]*$)')
_UNESCAPED_QUOTE: Final = re.compile(r'(?<!")"(?!")')


class IdentifierError(ValueError):
    """An identifier Electric would refuse; the message is Electric's own text."""


def parse_identifier(ident: str) -> str:
    """One identifier: quoted keeps case, unquoted is checked and downcased."""
    if len(ident) >= 1 and ident.startswith('"') and ident.endswith('"'):
        parsed = _parse_quoted(ident[1:-1])
    else:
        parsed = _parse_unquoted(ident)
    if len(parsed) > NAMEDATALEN:
        raise IdentifierError(f"Identifier is too long (max length is {NAMEDATALEN})")
    return parsed


def parse_relation(table: str) -> tuple[str, str]:
    """`name` (schema public) or `schema.name`; dots inside quotes do not split."""
    parts = _split_outside_quotes(table)
    if len(parts) == 1:
        return ("public", parse_identifier(parts[0]))
    if len(parts) == 2:
        return (parse_identifier(parts[0]), parse_identifier(parts[1]))
    raise IdentifierError(f"Invalid relation identifier, too many delimiters: {table}")


def parse_columns(columns: str) -> list[str]:
    """The `columns` parameter: comma-separated identifiers, commas inside quotes allowed."""
    return [parse_identifier(part) for part in _COMMA_OUTSIDE_QUOTES.split(columns)]


def quote_name(name: str) -> str:
    """Electric's `quote_name`: always double-quoted, inner quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def _parse_quoted(inner: str) -> str:
    if inner == "":
        raise IdentifierError(ZERO_LENGTH)
    if _UNESCAPED_QUOTE.search(inner):
        raise IdentifierError(f"Invalid identifier with unescaped quote: {inner}")
    return inner.replace('""', '"')


def _parse_unquoted(ident: str) -> str:
    if ident == "":
        raise IdentifierError(ZERO_LENGTH)
    if not _is_valid_unquoted(ident):
        raise IdentifierError(f"Invalid unquoted identifier contains special characters: {ident}")
    return "".join(chr(ord(ch) + 32) if "A" <= ch <= "Z" else ch for ch in ident)


def _is_valid_unquoted(ident: str) -> bool:
    # ^[\pL_][\pL\pM_0-9$]*$ : Python's `re` has no \pL, so check categories directly.
    first, rest = ident[0], ident[1:]
    if not (first.isalpha() or first == "_"):
        return False
    return all(
        ch.isalpha() or ch in "_$0123456789" or unicodedata.category(ch).startswith("M")
        for ch in rest
    )


def _split_outside_quotes(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    in_quotes = False
    for ch in text:
        if ch == "." and not in_quotes:
            parts.append("".join(current))
            current = []
            continue
        if ch == '"':
            in_quotes = not in_quotes
        current.append(ch)
    parts.append("".join(current))
    return parts
