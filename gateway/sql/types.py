"""The types of Electric's where parser: literal syntax, casts and comparison overloads.

Electric does not ask PostgreSQL whether a where fits the table: it types every node itself
(sync-service `lib/electric/replication/eval/parser.ex`, `env.ex`, `lookups.ex`, with the
tables of `env/known_functions.ex`, `env/implicit_casts.ex`, `env/explicit_casts.ex`; the same
in 1.0.10 and 1.7.12 for everything here) and answers 400 to what it cannot type. A string
literal or `$n` is "unknown" until what it meets gives it a type; its text must then read as
that type by Electric's own parsers (`postgres_interop/casting.ex` on Elixir's ISO 8601
parsers), which are stricter than PostgreSQL's: a `timestamptz` needs a date, a time and an
offset (`'2024-03-01'` is refused), a `timestamp` a date and a time, a `bool` one of
`t`/`true`/`f`/`false` (or a prefix of them).

The gateway knows a column's type only when the rules declare it (`client_where` as a map);
an undeclared column is `UNTYPED` and nothing that depends on its type is judged. Interval
literals are not judged (Electric's interval parser takes several syntaxes).
"""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Final

UNKNOWN: Final = "unknown"  # a string literal, NULL or `$n` before it meets a type
UNTYPED: Final = "untyped"  # a column whose type the rules do not declare

# What a rule may declare for a client_where column (Electric's basic types, bar bytea).
DECLARABLE: Final = frozenset(
    {
        "bool", "int2", "int4", "int8", "float4", "float8", "numeric", "text", "varchar",
        "date", "time", "timestamp", "timestamptz", "interval", "uuid",
    }
)  # fmt: skip
# `::type` targets every Electric evaluates (`Electric.Postgres.supported_types/0` and interval,
# less bytea and jsonb, which no where compares).
CAST_TYPES: Final = DECLARABLE - {"numeric"}
_NUMBERS: Final = ("int2", "int4", "int8", "float4", "float8", "numeric")
_ORDERED: Final = (*_NUMBERS, "text", "uuid", "date", "time", "timestamp", "timestamptz")
# Comparison overloads (`defcompare`, `bool = bool`, `interval = interval`): operator -> types.
OVERLOADS: Final[dict[str, tuple[str, ...]]] = {
    **dict.fromkeys(("<", ">", "<=", ">="), _ORDERED),
    **dict.fromkeys(("=", "<>"), (*_ORDERED, "bool", "interval")),
    **dict.fromkeys(("~~", "!~~", "~~*", "!~~*"), ("text",)),
}
# `implicit_casts.ex` (source -> targets), the identity included.
_IMPLICIT: Final[dict[str, frozenset[str]]] = {
    "int2": frozenset({"int2", "int4", "int8", "float4", "float8", "numeric"}),
    "int4": frozenset({"int4", "int8", "float4", "float8", "numeric"}),
    "int8": frozenset({"int8", "float4", "float8", "numeric"}),
    "float4": frozenset({"float4", "float8"}),
    "numeric": frozenset({"numeric", "float4", "float8"}),
    "text": frozenset({"text", "varchar"}),
    "varchar": frozenset({"varchar", "text"}),
    "date": frozenset({"date", "timestamp"}),
    "time": frozenset({"time", "interval"}),
}
_PREFERRED: Final = frozenset({"bool", "float8", "text", "timestamptz", "interval"})
# `<type>out` functions: what `::text` accepts (there is none for timestamptz).
_TO_TEXT: Final = frozenset((*_NUMBERS, "date", "time", "timestamp", "interval", "bool", "uuid"))
_EXPLICIT: Final = frozenset({("bool", "int4"), ("int4", "bool")})
_INT_RANGES: Final = {"int2": 2**15, "int4": 2**31, "int8": 2**63}
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
_FLOAT: Final = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_BOOL: Final = frozenset({"t", "tr", "tru", "true", "f", "fa", "fal", "fals", "false"})
_DATE: Final = r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
_TIME: Final = r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?"
_OFFSET: Final = r"(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)"
_DATE_ONLY: Final = re.compile(_DATE)
_TIME_ONLY: Final = re.compile("T?" + _TIME + _OFFSET + "?")
_TIMESTAMP: Final = re.compile(_DATE + "[T ]" + _TIME + _OFFSET + "?")
_TIMESTAMPTZ: Final = re.compile(_DATE + "[T ]" + _TIME + _OFFSET)
_FORMS: Final = {
    "date": "YYYY-MM-DD",
    "time": "HH:MM:SS",
    "timestamp": "YYYY-MM-DD HH:MM:SS",
    "timestamptz": "YYYY-MM-DD HH:MM:SSZ or +HH:MM",
}


def _valid_date(found: re.Match[str]) -> bool:
    year, month, day = (int(part) for part in found.group(1, 2, 3))
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def literal_problem(text: str, type_name: str) -> str | None:
    """Why Electric cannot read `text` as `type_name` (its words and a hint), None if it can."""
    problem = _literal_problem(text, type_name)
    return None if problem is None else f"{_shown(text)} {problem}"


def _literal_problem(text: str, type_name: str) -> str | None:
    if type_name in _INT_RANGES:
        limit = _INT_RANGES[type_name]
        if _INTEGER.fullmatch(text) and -limit <= int(text) < limit:
            return None
        return f"is not a whole number that fits {type_name}"
    if type_name in ("float4", "float8", "numeric"):
        return None if _FLOAT.fullmatch(text) else "is not a number Electric reads"
    if type_name == "bool":
        return None if text in _BOOL else "is not a bool: write true or false"
    if type_name == "uuid":
        try:
            uuid.UUID(text)
        except ValueError:
            return "is not a uuid"
        return None if len(text) == 36 else "is not a uuid with hyphens"
    if type_name not in _FORMS or text == "epoch":
        return None
    value = text.strip().upper() if type_name == "time" else text
    value = value.strip() if type_name == "date" else value
    pattern = {
        "date": _DATE_ONLY,
        "time": _TIME_ONLY,
        "timestamp": _TIMESTAMP,
        "timestamptz": _TIMESTAMPTZ,
    }[type_name]
    found = pattern.fullmatch(value)
    if value.endswith("-00:00"):  # Elixir's offset parser refuses an unknown local offset
        found = None
    if found is not None and (type_name == "time" or _valid_date(found)):
        return None
    return f"is not a {type_name} Electric reads: write {_FORMS[type_name]}" + (
        " (a date alone is refused)" if type_name in ("timestamp", "timestamptz") else ""
    )


def implicitly_castable(source: str, target: str) -> bool:
    return source == target or target in _IMPLICIT.get(source, ())


def cast_problem(source: str, target: str) -> str | None:
    """Why Electric has no cast from `source` to `target` (`Env.find_cast_function/3`)."""
    if source in (UNKNOWN, UNTYPED) or implicitly_castable(source, target):
        return None
    if source == "text" or (target == "text" and source in _TO_TEXT):
        return None
    if (source, target) in _EXPLICIT:
        return None
    return f"Electric has no cast from {source} to {target}"


def pick_overload(operator: str, left: str, right: str) -> str | None:
    """The argument type of the overload Electric picks for `left operator right`, or None.

    `Lookups.pick_concrete_operator_overload/3` over the overloads of `OVERLOADS`: an exact
    match, then one the unknown side assumes from the known one, then PostgreSQL's heuristics
    (implicit casts, most exact matches, preferred types, the string category for unknowns).
    """
    candidates = OVERLOADS.get(operator, ())
    if UNKNOWN not in (left, right):
        if left == right and left in candidates:
            return left
    elif left != right:  # one side unknown: it takes the other's type if that has an overload
        known = right if left == UNKNOWN else left
        if known in candidates:
            return known
    args = (left, right)
    fitting = [
        t for t in candidates if all(a == UNKNOWN or implicitly_castable(a, t) for a in args)
    ]
    for score in (
        lambda t: sum(a == t for a in args),
        lambda t: sum(a != t and t in _PREFERRED for a in args),
        lambda t: int(args == (UNKNOWN, UNKNOWN) and t == "text"),  # the string category
    ):
        if len(fitting) <= 1:
            break
        best = max(map(score, fitting))
        fitting = [t for t in fitting if score(t) == best]
    return fitting[0] if len(fitting) == 1 else None
