"""The operators and functions Electric's where parser knows, and the overload each use picks.

Electric refuses any operator or function not in `env/known_functions.ex`. Two readings of its
overload choice, for two uses:

- `pick_overload`: comparisons and LIKE between the types the gateway forwards, as
  `Lookups.pick_concrete_operator_overload/3` picks them (exact types, PostgreSQL's
  heuristics); the gateway judges client wheres with it;
- `TypeRules`: every operator and function of one version (1.0.10 or 1.7.12), on type families
  (every integer width is a number, varchar is text, ...), with arrays, arithmetic and enums:
  enough for the imitation to refuse what Electric refuses, in its words.
"""

from __future__ import annotations

from typing import Final

from gateway.sql.electric.casts import implicitly_castable
from gateway.sql.electric.types import INTS, NUMBERS, TIMES, UNKNOWN, family, is_array

COMPARISONS: Final = frozenset({"=", "<>", "<", ">", "<=", ">="})
LIKES: Final = frozenset({"~~", "~~*", "!~~", "!~~*"})
ARRAY_TESTS: Final = frozenset({"@>", "<@", "&&"})

_SCALARS: Final = ("int2", "int4", "int8", "float4", "float8", "numeric")
_ORDERED: Final = (*_SCALARS, "text", "uuid", "date", "time", "timestamp", "timestamptz")
# Comparison overloads (`defcompare`, `bool = bool`, `interval = interval`): operator -> types.
OVERLOADS: Final[dict[str, tuple[str, ...]]] = {
    **dict.fromkeys(("<", ">", "<=", ">="), _ORDERED),
    **dict.fromkeys(("=", "<>"), (*_ORDERED, "bool", "interval")),
    **dict.fromkeys(("~~", "!~~", "~~*", "!~~*"), ("text",)),
}
_PREFERRED: Final = frozenset({"bool", "float8", "text", "timestamptz", "interval"})

_ARITHMETIC_1_0: Final = frozenset({"+", "-", "/", "^", "&", "|", "#", "||"})
_UNARY_1_0: Final = frozenset({"+", "-", "|/", "@"})
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
# The casting functions `int4(text)` ... `interval(text)` (and `numeric(text)`).
_PARSING_FUNCTIONS: Final = frozenset(
    {"bool", "bytea", "date", "float4", "float8", "int2", "int4", "int8", "jsonb", "text"}
    | {"time", "timestamp", "timestamptz", "uuid", "varchar", "interval", "numeric"}
)


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


class TypeRules:
    """Operators and functions of one Electric version (`modern`: 1.7.12), on type families."""

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
        if name in ("lower", "upper", "concat", "like", "ilike") or name in _PARSING_FUNCTIONS:
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
