"""PostgreSQL identifiers as Electric reads them in `table` and `columns`.

Electric (SS/postgres/identifiers.ex) downcases unquoted identifiers, keeps double-quoted ones
verbatim with `""` as an escaped quote, and splits `columns` on commas outside quotes. We parse
the same way so that what we check is what Electric will use, and we write identifiers back in
one canonical form so no client spelling reaches the upstream.
"""

from __future__ import annotations

import re
from typing import Final

MAX_IDENTIFIER_BYTES: Final = 63
_UNQUOTED: Final = re.compile(r"[^\W\d][\w$]*", re.UNICODE)
_PLAIN: Final = re.compile(r"[a-z_][a-z0-9_$]*")


class IdentifierError(ValueError):
    """An identifier list that PostgreSQL (and so Electric) would not read as intended."""


def _split(text: str, separator: str) -> list[str]:
    """Identifiers in `text` separated by `separator` outside double quotes, each normalised."""
    names: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] == " ":
            i += 1
        if i < n and text[i] == '"':
            j, chars = i + 1, []
            while True:
                if j >= n:
                    raise IdentifierError(f"unterminated quoted identifier in {text!r}")
                if text[j] == '"':
                    if j + 1 < n and text[j + 1] == '"':
                        chars.append('"')
                        j += 2
                        continue
                    break
                chars.append(text[j])
                j += 1
            name = "".join(chars)
            if not name:
                raise IdentifierError("zero-length quoted identifier")
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in (separator, " "):
                j += 1
            raw = text[i:j]
            if not _UNQUOTED.fullmatch(raw):
                shown = raw or "(empty)"
                raise IdentifierError(
                    f"{shown!r} is not a valid identifier; quote names with capitals or "
                    "special characters in double quotes"
                )
            name = raw.lower()
            i = j
        if len(name.encode()) > MAX_IDENTIFIER_BYTES:
            raise IdentifierError(f"identifier {name!r} is longer than 63 bytes")
        names.append(name)
        while i < n and text[i] == " ":
            i += 1
        if i >= n:
            return names
        if text[i] != separator:
            raise IdentifierError(f"unexpected {text[i]!r} after identifier {name!r}")
        i += 1


def parse_column_list(text: str) -> tuple[str, ...]:
    """`a,"B",c` -> ('a', 'B', 'c'); duplicates refused, since they mean a confused client."""
    names = _split(text, ",")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise IdentifierError(f"column {name!r} is listed twice")
        seen.add(name)
    return tuple(names)


def parse_relation(text: str) -> tuple[str, str]:
    """`name` or `schema.name` -> (schema, name); an unqualified name is in `public`."""
    parts = _split(text, ".")
    if len(parts) == 1:
        return "public", parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise IdentifierError(f"{text!r} has more than one dot; quote names that contain dots")


def quote_identifier(name: str) -> str:
    """The canonical spelling: bare when PostgreSQL reads it back unchanged, else quoted."""
    if _PLAIN.fullmatch(name):
        return name
    return '"' + name.replace('"', '""') + '"'


def format_relation(schema: str, name: str) -> str:
    return f"{quote_identifier(schema)}.{quote_identifier(name)}"


def format_column_list(names: tuple[str, ...]) -> str:
    return ",".join(quote_identifier(name) for name in names)
