"""The types, operators, functions and casts Electric's where parser knows, per version.

Electric does not hand a where clause to PostgreSQL to judge: it parses it with libpg_query and
types every node itself against a small table of known operators and functions
(`replication/eval/env/known_functions.ex`), refusing anything else. This module is our
reading of those tables for sync-service 1.0.10 and 1.7.12, simplified to type *families*
(every integer width is `int`, varchar is text, ...): enough to refuse what Electric refuses,
with its words, without re-implementing its overload resolution. The documented subset (the
`@electric-sql/client` where-clause reference) is a strict subset of what is here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Final

INTS: Final = frozenset({"int2", "int4", "int8"})
NUMBERS: Final = INTS | {"float4", "float8", "numeric"}
TEXTS: Final = frozenset({"text", "varchar", "bpchar", "name"})
TIMES: Final = frozenset({"date", "time", "timestamp", "timestamptz", "interval"})
UNKNOWN: Final = "unknown"
# What `::type` may name (`Electric.Postgres.supported_types/0` plus interval).
CAST_TARGETS: Final = frozenset(
    {"bool", "bytea", "date", "float4", "float8", "int2", "int4", "int8", "jsonb", "text"}
    | {"time", "timestamp", "timestamptz", "uuid", "varchar", "interval"}
)
_INT_RANGES: Final = {"int2": 2**15, "int4": 2**31, "int8": 2**63}
# `Casting.parse_bool/1`: lower case only, prefixes of true/false (no yes/no/on/off/1/0).
_BOOL_WORDS: Final = frozenset({"t", "tr", "tru", "true", "f", "fa", "fal", "fals", "false"})
_SIMPLE_NAME: Final = re.compile(r"^[a-z_][a-z0-9_]*$")
# `env/implicit_casts.ex`, the types here (source -> targets).
_IMPLICIT: Final[dict[str, frozenset[str]]] = {
    "int2": frozenset({"int4", "int8", "float4", "float8", "numeric"}),
    "int4": frozenset({"int8", "float4", "float8", "numeric"}),
    "int8": frozenset({"float4", "float8", "numeric"}),
    "float4": frozenset({"float8"}),
    "numeric": frozenset({"float4", "float8"}),
    "text": frozenset({"varchar", "bpchar", "name"}),
    "varchar": frozenset({"text", "bpchar", "name"}),
    "bpchar": frozenset({"text", "varchar", "name"}),
    "name": frozenset({"text"}),
    "date": frozenset({"timestamp"}),
    "time": frozenset({"interval"}),
}
# The `<type>out` functions of `known_functions.ex`.
_HAS_OUT: Final = (
    INTS
    | {"float4", "float8", "numeric", "date", "time", "timestamp"}
    | {
        "interval",
        "bool",
        "uuid",
    }
)

COMPARISONS: Final = frozenset({"=", "<>", "<", ">", "<=", ">="})
LIKES: Final = frozenset({"~~", "~~*", "!~~", "!~~*"})
ARRAY_TESTS: Final = frozenset({"@>", "<@", "&&"})
_ARITHMETIC_1_0: Final = frozenset({"+", "-", "/", "^", "&", "|", "#", "||"})
_UNARY_1_0: Final = frozenset({"+", "-", "|/", "@"})

# name -> accepted argument counts (None: any number, Electric's VARIADIC).
_ONE_ARGUMENT_1_0: Final = (
    "int2", "int4", "int8", "float4", "float8", "numeric", "bool", "uuid", "text", "date",
    "time", "timestamp", "timestamptz", "interval", "int2out", "int4out", "int8out",
    "float4out", "float8out", "numericout", "dateout", "timeout", "timestampout", "intervalout",
    "boolout", "uuidout", "lower", "upper", "justify_days", "justify_hours", "justify_interval",
    "array_ndims",
)  # fmt: skip
_TWO_ARGUMENTS_1_0: Final = ("timezone", "array_cat", "array_prepend", "array_append")
# name -> accepted argument counts (None: any number, Electric's VARIADIC).
_FUNCTIONS_1_0: Final[dict[str, frozenset[int] | None]] = {
    **{name: frozenset({1}) for name in _ONE_ARGUMENT_1_0},
    **{name: frozenset({2}) for name in _TWO_ARGUMENTS_1_0},
}
_FUNCTIONS_1_7: Final[dict[str, frozenset[int] | None]] = {
    **_FUNCTIONS_1_0,
    "like": frozenset({2}),
    "ilike": frozenset({2}),
    "concat": None,
    "coalesce": None,
    "greatest": None,
    "least": None,
}
_RETURNS: Final = {
    "lower": "text",
    "upper": "text",
    "concat": "text",
    "like": "bool",
    "ilike": "bool",
    "array_ndims": "int4",
    "justify_days": "interval",
    "justify_hours": "interval",
    "justify_interval": "interval",
    "timezone": "timestamptz",
}


class TypeRules:
    """Operators, functions and casts of one Electric version (`modern`: 1.7.12)."""

    def __init__(self, *, modern: bool) -> None:
        self.modern = modern
        self.functions = _FUNCTIONS_1_7 if modern else _FUNCTIONS_1_0
        binary = COMPARISONS | LIKES | ARRAY_TESTS | _ARITHMETIC_1_0
        self.binary = binary | {"*"}
        self.unary = _UNARY_1_0 | ({"~"} if modern else set())

    def function_result(self, name: str, args: list[str]) -> str:
        """The type a known function returns given its argument types."""
        if name in _RETURNS:
            return _RETURNS[name]
        if name.endswith("out"):
            return "text"
        if name in ("array_cat", "array_prepend", "array_append"):
            return next((t for t in args if is_array(t)), UNKNOWN)
        if name in ("coalesce", "greatest", "least"):
            return next((t for t in args if t != UNKNOWN), "text")
        return name  # the casting functions int4(text) ... interval(text)

    def function_accepts(self, name: str, args: list[str]) -> bool:
        """Whether some overload of `name` takes arguments of these types."""
        known = [t for t in args if t != UNKNOWN]
        if name in ("lower", "upper", "concat", "like", "ilike") or name in CAST_TARGETS | {
            "numeric"
        }:
            return all(family(t) == "text" for t in known)
        if name.startswith("justify_"):
            return all(t == "interval" for t in known)
        if name in ("array_cat", "array_ndims"):
            return all(is_array(t) for t in known)
        return True

    def binary_result(self, op: str, left: str, right: str) -> tuple[str, str, str] | None:
        """(left type, right type, result) of the overload `left op right` picks, None if none.

        An unknown side (a string literal, NULL or `$n`) takes the other side's type, as
        Electric's `cast_unknowns` does; two unknowns are text.
        """
        if left == UNKNOWN and right == UNKNOWN:
            left = right = "text"
        elif left == UNKNOWN:
            left = _counterpart(op, right)
        elif right == UNKNOWN:
            right = _counterpart(op, left)
        result = self._binary(op, left, right)
        return None if result is None else (left, right, result)

    def _binary(self, op: str, left: str, right: str) -> str | None:
        lf, rf = family(left), family(right)
        if op in COMPARISONS:
            if lf == rf and lf in ("number", "text"):
                return "bool"
            if left == right and left in ("uuid", "date", "time", "timestamp", "timestamptz"):
                return "bool"
            if {left, right} == {"date", "timestamp"}:  # the one implicit cast between them
                return "bool"
            if op in ("=", "<>") and left == right:
                if left in ("bool", "interval") or is_array(left):
                    return "bool"
                if left.startswith("enum ") and self.modern:
                    return "bool"
            return None
        if op in LIKES:
            return "bool" if lf == rf == "text" else None
        if op in ARRAY_TESTS:
            return "bool" if is_array(left) and is_array(right) else None
        if op == "||":
            if lf == rf == "text":
                return "text"
            return left if is_array(left) else right if is_array(right) else None
        if lf == rf == "number":
            if op == "*" and not self.modern:
                return None
            return left if left == right else "numeric"
        if left in TIMES or right in TIMES:
            return _time_arithmetic(op, left, right)
        return None

    def unary_result(self, op: str, arg: str) -> str | None:
        arg = "int4" if arg == UNKNOWN else arg
        if op == "|/":
            return "float8" if family(arg) == "number" else None
        if op == "~":
            return arg if arg in INTS else None
        return arg if family(arg) == "number" else None

    def cast_allowed(self, source: str, target: str) -> bool:
        """Whether Electric has a cast from `source` to `target` (`Env.find_cast_function/3`):
        an implicit cast, `<target>(text)` from text, `<source>out` to text (there is none for
        timestamptz or jsonb; an enum goes to text as is), or bool <-> int4."""
        if source == target or target in _IMPLICIT.get(source, ()):
            return True
        if source == "text":
            return target in CAST_TARGETS - {"bytea", "jsonb"}
        if target == "text":
            return source in _HAS_OUT or source.startswith("enum ")
        return {source, target} == {"bool", "int4"}


def family(type_name: str) -> str:
    """`number`, `text` or the type itself."""
    if type_name in NUMBERS:
        return "number"
    if type_name in TEXTS:
        return "text"
    return type_name


def is_array(type_name: str) -> bool:
    return type_name.endswith("[]")


def literal_problem(value: str, type_name: str) -> bool:
    """True when Electric's parser for `type_name` fails on `value` (`Env.parse_const/3`:
    `casting.ex` on Elixir's `String.to_integer`, `Float.parse`, `Ecto.UUID.dump` and ISO 8601
    parsers; text types take anything, interval literals are not judged here)."""
    if type_name in _INT_RANGES:
        limit = _INT_RANGES[type_name]
        return not re.fullmatch(r"[+-]?\d+", value) or not -limit <= int(value) < limit
    if type_name in ("float4", "float8", "numeric"):
        return not re.fullmatch(r"[+-]?\d+(\.\d+)?([eE][+-]?\d+)?", value)
    if type_name == "bool":
        return value not in _BOOL_WORDS
    if type_name == "uuid":
        return not re.fullmatch(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", value)
    if type_name in _ISO_PARSERS:
        return value != "epoch" and not _ISO_PARSERS[type_name](value)
    return False


def _iso_date(text: str) -> bool:
    """`Calendar.ISO.parse_date/1` (extended format, optional sign) with a real day."""
    found = re.fullmatch(r"([+-]?)(\d{4})-(\d{2})-(\d{2})", text)
    if found is None:
        return False
    year = int(found.group(2)) * (-1 if found.group(1) == "-" else 1)
    month, day = int(found.group(3)), int(found.group(4))
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    return 1 <= month <= 12 and 1 <= day <= days[month - 1]


_CLOCK: Final = r"([01]\d|2[0-3]):[0-5]\d:[0-5]\d([.,]\d+)?"
_ZONE: Final = r"(Z|[+-]([01]\d|2[0-3])(:?[0-5]\d)?)"


def _iso_datetime(text: str, *, offset: bool) -> bool:
    """`NaiveDateTime.from_iso8601/1` (offset optional, ignored) or `DateTime.from_iso8601/1`
    (offset required): a date, `T` or a space, a time, an offset other than `-00:00`."""
    found = re.fullmatch(r"([+-]?\d{4}-\d{2}-\d{2})[T ]" + _CLOCK + "(" + _ZONE + ")?", text)
    if found is None or text.endswith("-00:00") or not _iso_date(found.group(1)):
        return False
    return found.group(4) is not None or not offset


def _iso_time(text: str) -> bool:
    """`Casting.parse_time/1`: trimmed, upper-cased, `Time.from_iso8601/1` or `h:m:s AM/PM`."""
    text = text.strip().upper()
    if re.fullmatch("T?" + _CLOCK + _ZONE + "?", text) and not text.endswith("-00:00"):
        return True
    found = re.fullmatch(r"(\d{2}):[0-5]\d:[0-5]\d([.,]\d+)?\s*(AM|PM)", text)
    return found is not None and int(found.group(1)) <= 12


def _iso_positive_date(text: str) -> bool:
    """`Casting.parse_date/1`: trimmed, and no year before 1 (PostgreSQL has none)."""
    return _iso_date(text.strip()) and not text.strip().startswith("-")


_ISO_PARSERS: Final[dict[str, Callable[[str], bool]]] = {
    "date": _iso_positive_date,
    "time": _iso_time,
    "timestamp": partial(_iso_datetime, offset=False),
    "timestamptz": partial(_iso_datetime, offset=True),
}


def identifier(names: list[str]) -> str:
    """How Electric prints a name in messages: `pg_catalog.` dropped, odd names quoted."""
    if len(names) == 2 and names[0] == "pg_catalog":
        names = names[1:]
    return ".".join(
        name if _SIMPLE_NAME.match(name) else '"' + name.replace('"', '""') + '"' for name in names
    )


def _counterpart(op: str, known: str) -> str:
    # The unknown side of `arr @> '{...}'` is an array of the same type; of `x || 'a'`, text.
    if op == "||" and not is_array(known):
        return "text"
    return known


def _time_arithmetic(op: str, left: str, right: str) -> str | None:
    if op not in ("+", "-", "*"):
        return None
    if "interval" in (left, right):
        other = right if left == "interval" else left
        return other if other in TIMES or other in NUMBERS else None
    if op == "-" and left == right == "date":
        return "int8"
    if left == "date" and right in INTS:
        return "date"
    return "timestamp" if {left, right} == {"date", "time"} else None
