"""How Electric reads a literal's text as a type: its parsers, modelled once.

A string literal or `$n` is "unknown" until what it meets gives it a type; Electric then reads
its text with its own parsers (`Env.parse_const/3`: `postgres_interop/casting.ex` on Elixir's
`String.to_integer`, `Float.parse`, `Ecto.UUID.dump` and ISO 8601 parsers), stricter than
PostgreSQL's: a `timestamptz` needs a date, a time and an offset (`'2024-03-01'` is refused), a
`timestamp` a date and a time, a `bool` one of `t`/`true`/`f`/`false` or a prefix (not `yes` or
`1`). Text types take anything; interval literals are not judged (Electric's interval parser
takes several syntaxes).

`electric_reads` is the parsers as they are (the imitation refuses with them). The gateway
forwards less (`literal_problem`): a spelling Electric reads but PostgreSQL, which runs the
clause for the snapshot, reads differently or not at all is refused too: a signed or zero
year, a comma before the fraction of a second, a 12-hour clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Final

_INT_RANGES: Final = {"int2": 2**15, "int4": 2**31, "int8": 2**63}
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
_FLOAT: Final = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_UUID: Final = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
# `Casting.parse_bool/1`: lower case only, prefixes of true/false (no yes/no/on/off/1/0).
_BOOL_WORDS: Final = frozenset({"t", "tr", "tru", "true", "f", "fa", "fal", "fals", "false"})
_CLOCK: Final = r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.,][0-9]+)?"
_ZONE: Final = r"(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)"
_FORMS: Final = {
    "date": "YYYY-MM-DD",
    "time": "HH:MM:SS",
    "timestamp": "YYYY-MM-DD HH:MM:SS",
    "timestamptz": "YYYY-MM-DD HH:MM:SSZ or +HH:MM",
}
# What PostgreSQL does not read as Electric does (see the module docstring).
_SIGNED_YEAR: Final = re.compile(r"\s*[+-]")
_ZERO_YEAR: Final = re.compile(r"\s*0000-")
_COMMA_FRACTION: Final = re.compile(r".*:[0-5][0-9],[0-9]")
_TWELVE_HOURS: Final = re.compile(r".*[0-9]\s*(AM|PM)\s*", re.IGNORECASE)


def _iso_date(text: str) -> bool:
    """`Calendar.ISO.parse_date/1` (extended format, optional sign) with a real day."""
    found = re.fullmatch(r"([+-]?)([0-9]{4})-([0-9]{2})-([0-9]{2})", text)
    if found is None:
        return False
    year = int(found.group(2)) * (-1 if found.group(1) == "-" else 1)
    month, day = int(found.group(3)), int(found.group(4))
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    return 1 <= month <= 12 and 1 <= day <= days[month - 1]


def _iso_datetime(text: str, *, offset: bool) -> bool:
    """`NaiveDateTime.from_iso8601/1` (offset optional, ignored) or `DateTime.from_iso8601/1`
    (offset required): a date, `T` or a space, a time, an offset other than `-00:00`."""
    found = re.fullmatch(r"([+-]?[0-9]{4}-[0-9]{2}-[0-9]{2})[T ]" + _CLOCK + f"({_ZONE})?", text)
    if found is None or text.endswith("-00:00") or not _iso_date(found.group(1)):
        return False
    return found.group(4) is not None or not offset


def _iso_time(text: str) -> bool:
    """`Casting.parse_time/1`: trimmed, upper-cased, `Time.from_iso8601/1` or `h:m:s AM/PM`."""
    text = text.strip().upper()
    if re.fullmatch("T?" + _CLOCK + _ZONE + "?", text) and not text.endswith("-00:00"):
        return True
    found = re.fullmatch(r"([0-9]{2}):[0-5][0-9]:[0-5][0-9]([.,][0-9]+)?\s*(AM|PM)", text)
    return found is not None and int(found.group(1)) <= 12


def _iso_positive_date(text: str) -> bool:
    """`Casting.parse_date/1`: trimmed, and no negative year."""
    return _iso_date(text.strip()) and not text.strip().startswith("-")


_ISO_PARSERS: Final[dict[str, Callable[[str], bool]]] = {
    "date": _iso_positive_date,
    "time": _iso_time,
    "timestamp": partial(_iso_datetime, offset=False),
    "timestamptz": partial(_iso_datetime, offset=True),
}


def electric_reads(text: str, type_name: str) -> bool:
    """Whether Electric's parser for `type_name` reads `text` (types it has no parser for, the
    text types and interval among them, take anything)."""
    if type_name in _INT_RANGES:
        limit = _INT_RANGES[type_name]
        return bool(_INTEGER.fullmatch(text)) and -limit <= int(text) < limit
    if type_name in ("float4", "float8", "numeric"):
        return bool(_FLOAT.fullmatch(text))
    if type_name == "bool":
        return text in _BOOL_WORDS
    if type_name == "uuid":
        return bool(_UUID.fullmatch(text))
    if type_name in _ISO_PARSERS:
        return text == "epoch" or _ISO_PARSERS[type_name](text)
    return True


def _postgres_differs(text: str, type_name: str) -> bool:
    """A date or time spelling Electric reads that the gateway does not forward."""
    if type_name not in _FORMS or text == "epoch":
        return False
    if type_name == "time":
        return bool(_COMMA_FRACTION.match(text) or _TWELVE_HOURS.fullmatch(text))
    dated = bool(_SIGNED_YEAR.match(text) or _ZERO_YEAR.match(text))
    return dated or (type_name != "date" and bool(_COMMA_FRACTION.match(text)))


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def literal_problem(text: str, type_name: str) -> str | None:
    """Why the gateway will not forward `text` as `type_name` (Electric's words and a hint),
    None if Electric and PostgreSQL both read it."""
    if electric_reads(text, type_name) and not _postgres_differs(text, type_name):
        return None
    if type_name in _INT_RANGES:
        problem = f"is not a whole number that fits {type_name}"
    elif type_name in ("float4", "float8", "numeric"):
        problem = "is not a number Electric reads"
    elif type_name == "bool":
        problem = "is not a bool: write true or false"
    elif type_name == "uuid":
        bare = re.fullmatch(r"[0-9a-fA-F]{32}", text.replace("-", "").strip("{}"))
        problem = "is not a uuid with hyphens" if bare and len(text) != 36 else "is not a uuid"
    else:
        problem = f"is not a {type_name} Electric reads: write {_FORMS[type_name]}" + (
            " (a date alone is refused)" if type_name in ("timestamp", "timestamptz") else ""
        )
    return f"{_shown(text)} {problem}"
