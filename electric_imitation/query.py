"""Query-string decoding the way Plug does it, since Electric sees parameters through Plug.

Plug semantics that matter to a proxy (`Plug.Conn.Query`): pairs split on `&`, keys and values
are form-decoded, a duplicate key keeps its last value, a bare key decodes to "", and
`name[k]=v` builds a nested map (that is how `params[1]=x` reaches Electric).
"""

from __future__ import annotations

import re
from typing import TypeAlias
from urllib.parse import unquote_plus

QueryValue: TypeAlias = "str | list[str] | dict[str, QueryValue]"
QueryMap: TypeAlias = dict[str, QueryValue]

_BRACKETED = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])+)$")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")


def decode_pairs(raw_query: str) -> list[tuple[str, str]]:
    """All decoded (key, value) pairs in order, duplicates kept; a bare key has value ""."""
    pairs: list[tuple[str, str]] = []
    for part in raw_query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((unquote_plus(key), unquote_plus(value)))
    return pairs


def decode_query(raw_query: str) -> QueryMap:
    """Decode into Plug's nested map: last duplicate wins, `a[b]=v` nests, `a[]=v` appends."""
    result: QueryMap = {}
    for key, value in decode_pairs(raw_query):
        _assign(result, key, value)
    return result


def _assign(target: QueryMap, key: str, value: str) -> None:
    match = _BRACKETED.match(key)
    if match is None:
        target[key] = value
        return
    path = [match.group(1), *_SEGMENT.findall(match.group(2))]
    node = target
    for index, segment in enumerate(path[:-1]):
        following = path[index + 1]
        if following == "":
            existing = node.get(segment)
            node[segment] = [*existing, value] if isinstance(existing, list) else [value]
            return
        child = node.get(segment)
        if not isinstance(child, dict):
            child = {}
            node[segment] = child
        node = child
    node[path[-1]] = value


def last_value(pairs: list[tuple[str, str]], key: str) -> str | None:
    """The value Plug would give `key` (the last occurrence), or None when absent."""
    found: str | None = None
    for name, value in pairs:
        if name == key:
            found = value
    return found
