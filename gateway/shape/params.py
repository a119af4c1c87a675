"""The client's `/v1/shape` query -> `ShapeQuery`, refusing anything not on the allow-list.

SECURITY: aiohttp's `query.get` returns the first of duplicate keys and Electric (Plug) the last,
so any repeated key is refused outright rather than resolved. Keys arrive percent-decoded, so
`%74able` is `table` and duplicates of it are caught too. Every accepted value is checked for
form here; nothing is forwarded as the client spelled it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from gateway.errors import Code, Refusal
from gateway.sql.identifiers import IdentifierError, parse_column_list

FORBIDDEN: Final = frozenset({"secret", "api_secret"})
ACCEPTED: Final = frozenset(
    {
        "table", "offset", "handle", "live", "cursor", "live_sse", "experimental_live_sse",
        "log", "replica", "columns", "expired_handle", "cache-buster", "where",
        "subset__where", "subset__params", "subset__limit", "subset__offset",
        "subset__order_by", "subset__where_expr", "subset__order_by_expr",
    }
)  # fmt: skip
_PARAM_KEY: Final = re.compile(r"params\[([1-9][0-9]{0,3})\]")
_OFFSET: Final = re.compile(r"-1|now|(0|[1-9][0-9]{0,19})_(0|[1-9][0-9]{0,19}|inf)")
_TOKEN: Final = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_CURSOR: Final = re.compile(r"[A-Za-z0-9_.:-]{0,64}")
_NUMBER: Final = re.compile(r"0|[1-9][0-9]{0,8}")
MAX_VALUE_LENGTH: Final = 8192


def _invalid(message: str) -> Refusal:
    return Refusal(Code.INVALID_PARAMETER, message)


@dataclass(frozen=True, slots=True)
class SubsetQuery:
    """A subset snapshot request (`subset__*` parameters or a POST body)."""

    where: str | None = None
    params: Mapping[int, str] = field(default_factory=dict)
    limit: int | None = None
    offset: int | None = None
    order_by: str | None = None


@dataclass(frozen=True, slots=True)
class ShapeQuery:
    shape: str
    offset: str
    handle: str | None = None
    live: bool = False
    sse: bool = False
    cursor: str | None = None
    log: str | None = None
    replica: str | None = None
    columns: tuple[str, ...] | None = None
    where: str | None = None
    params: Mapping[int, str] = field(default_factory=dict)
    expired_handle: str | None = None
    cache_buster: str | None = None
    subset: SubsetQuery | None = None


def _truthy(value: str) -> bool:
    """Electric's rule: anything but the literal `false` is true (a bare `live` included)."""
    return value != "false"


def _token(value: str, name: str, pattern: re.Pattern[str] = _TOKEN) -> str:
    if not pattern.fullmatch(value):
        raise _invalid(f"{name} {value[:64]!r} is malformed; send back what Electric returned")
    return value


def _text(value: str, name: str) -> str:
    if len(value) > MAX_VALUE_LENGTH or "\x00" in value:
        raise _invalid(f"{name} must be at most {MAX_VALUE_LENGTH} characters, without NUL")
    return value


def _choice(value: str, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise _invalid(f"{name} must be one of: {', '.join(choices)}")
    return value


def _count(value: str, name: str) -> int:
    if not _NUMBER.fullmatch(value):
        raise _invalid(f"{name} must be a whole number")
    return int(value)


def parse_subset_params(value: object, name: str = "subset__params") -> dict[int, str]:
    """A JSON object (or its text) of `"n": "value"`, n from 1."""
    if isinstance(value, str):
        try:
            value = json.loads(_text(value, name))
        except ValueError:
            raise _invalid(f'{name} must be a JSON object like {{"1": "value"}}') from None
    if not isinstance(value, dict):
        raise _invalid(f'{name} must be a JSON object like {{"1": "value"}}')
    params: dict[int, str] = {}
    for key, item in value.items():
        if not (isinstance(key, str) and re.fullmatch(r"[1-9][0-9]{0,3}", key)):
            raise _invalid(f"{name} keys must be parameter numbers 1, 2, ...")
        if not isinstance(item, str):
            raise _invalid(f"{name} values must be strings")
        params[int(key)] = _text(item, f"{name}[{key}]")
    return params


def check_keys(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Refuse secrets, duplicates and unknown keys (in that order of precedence)."""
    pairs = list(items)
    query = dict(pairs)
    for key in query:
        if key in FORBIDDEN:
            raise Refusal(
                Code.FORBIDDEN_PARAMETER,
                f"{key} may not be sent by clients; the gateway adds Electric's secret itself",
            )
    if len(query) != len(pairs):  # some key came twice: name the first that did
        for key, count in Counter(key for key, _ in pairs).items():
            if count > 1:
                raise Refusal(
                    Code.DUPLICATE_PARAMETER,
                    f"parameter {key[:64]!r} appears {count} times; send it once",
                )
    for key in query:
        if key not in ACCEPTED and not _PARAM_KEY.fullmatch(key):
            raise Refusal(
                Code.UNKNOWN_PARAMETER,
                f"parameter {key[:64]!r} is not accepted on /v1/shape",
            )
    return query


def parse_shape_query(items: Iterable[tuple[str, str]]) -> ShapeQuery:
    """Build a ShapeQuery from decoded query pairs, or raise Refusal."""
    query = check_keys(items)
    if not query.get("table"):
        raise _invalid("table is required: the name of a shape from the gateway's rules")
    if "offset" not in query:
        raise _invalid("offset is required: -1 for a new shape, else electric-offset")
    params = {
        int(match.group(1)): _text(value, key)
        for key, value in query.items()
        if key.startswith("params[") and (match := _PARAM_KEY.fullmatch(key))
    }
    columns = None
    if "columns" in query:
        try:
            columns = parse_column_list(_text(query["columns"], "columns"))
        except IdentifierError as error:
            raise _invalid(f"columns: {error}") from None
    subset = None
    if any(key.startswith("subset__") for key in query):
        subset = SubsetQuery(
            where=_text(query["subset__where"], "subset__where")
            if "subset__where" in query
            else None,
            params=parse_subset_params(query["subset__params"])
            if "subset__params" in query
            else {},
            limit=_count(query["subset__limit"], "subset__limit")
            if "subset__limit" in query
            else None,
            offset=_count(query["subset__offset"], "subset__offset")
            if "subset__offset" in query
            else None,
            order_by=_text(query["subset__order_by"], "subset__order_by")
            if "subset__order_by" in query
            else None,
        )
        for unused in ("subset__where_expr", "subset__order_by_expr"):
            if unused in query:
                _text(query[unused], unused)  # accepted, checked for size, never forwarded
    live = _truthy(query.get("live", "false"))
    sse = _truthy(query.get("live_sse", query.get("experimental_live_sse", "false")))
    return ShapeQuery(
        shape=_text(query["table"], "table"),
        offset=_token(query["offset"], "offset", _OFFSET),
        handle=_token(query["handle"], "handle") if "handle" in query else None,
        live=live,
        sse=sse,
        cursor=_token(query["cursor"], "cursor", _CURSOR) if "cursor" in query else None,
        log=_choice(query["log"], "log", ("full", "changes_only")) if "log" in query else None,
        replica=_choice(query["replica"], "replica", ("default", "full"))
        if "replica" in query
        else None,
        columns=columns,
        where=_text(query["where"], "where") if "where" in query else None,
        params=params,
        expired_handle=_token(query["expired_handle"], "expired_handle")
        if "expired_handle" in query
        else None,
        cache_buster=_token(query["cache-buster"], "cache-buster")
        if "cache-buster" in query
        else None,
        subset=subset,
    )


SUBSET_BODY_KEYS: Final = frozenset(
    {"where", "params", "limit", "offset", "order_by", "where_expr", "order_by_expr"}
)


def parse_subset_body(document: object) -> SubsetQuery:
    """POST /v1/shape body: the subset keys at top level or nested under `subset`."""
    if isinstance(document, dict) and set(document) == {"subset"}:
        document = document["subset"]
    if not isinstance(document, dict):
        raise _invalid("the body must be a JSON object of subset parameters")
    unknown = sorted(set(document) - SUBSET_BODY_KEYS)
    if unknown:
        raise Refusal(
            Code.UNKNOWN_PARAMETER,
            f"body key {unknown[0][:64]!r} is not accepted; "
            f"use {', '.join(sorted(SUBSET_BODY_KEYS))}",
        )

    def text(key: str) -> str | None:
        value = document.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise _invalid(f"{key} must be a string")
        return _text(value, key)

    def count(key: str) -> int | None:
        value = document.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10**9:
            raise _invalid(f"{key} must be a whole number")
        return value

    for unused in ("where_expr", "order_by_expr"):
        if unused in document and len(json.dumps(document[unused])) > MAX_VALUE_LENGTH:
            raise _invalid(f"{unused} is too large")
    return SubsetQuery(
        where=text("where"),
        params=parse_subset_params(document["params"], "params") if "params" in document else {},
        limit=count("limit"),
        offset=count("offset"),
        order_by=text("order_by"),
    )
