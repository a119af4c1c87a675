"""Request-parameter validation in Electric's order and words (`shapes/api/params.ex`).

Electric casts with Ecto, so: a non-string where a string is expected is "is invalid", blank
values fall back to the field default, and after the first failing rule the later rules are
skipped (each validator is guarded on `valid?`). Only the checks that need no database are
here; `definitions.py` continues with the table, columns and where.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

from electric_imitation.errors import InvalidRequestError
from electric_imitation.identifiers import IdentifierError, parse_columns
from electric_imitation.offsets import (
    BEFORE_ALL,
    INVALID_FORMAT,
    NOW,
    LogOffset,
    Now,
    OffsetError,
    parse_offset,
)
from electric_imitation.query import QueryMap, QueryValue
from electric_imitation.versions import ServerVersion
from electric_imitation.where import check_param_keys

Replica = Literal["default", "full"]
LogMode = Literal["full", "changes_only"]

INVALID: Final = "is invalid"
# Parameters a version only reads once it has the feature named.
_MODERN_FIELDS: Final = {
    "live_sse": "sse",
    "experimental_live_sse": "sse",
    "log": "changes_only",
    "queryable_columns": "subsets",
}
BLANK: Final = "can't be blank"
SUBSET_KEYS: Final = (
    "where",
    "order_by",
    "limit",
    "offset",
    "params",
    "where_expr",
    "order_by_expr",
)


@dataclass(frozen=True, slots=True)
class RequestParams:
    """A request that passed every check not needing the database."""

    table: str
    offset: LogOffset | Now
    handle: str | None
    live: bool
    live_sse: bool
    where: str | None
    columns: tuple[str, ...] | None
    queryable_columns: tuple[str, ...] | None
    replica: Replica
    log: LogMode
    params: dict[str, str]
    cursor: str | None
    subset: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class SubsetParams:
    """A cast `subset__*` / POST body request (where/order_by still to be checked by Postgres)."""

    where: str | None
    params: dict[str, str]
    order_by: str | None
    limit: int | None
    offset: int | None


def merge_request(
    query: QueryMap, body: dict[str, Any] | None, server: ServerVersion
) -> dict[str, Any]:
    """Query plus POST body, with `subset__x` folded into a `subset` map (serve_shape_plug.ex).

    What a version does not know it never reads (Ecto's `cast` drops unknown fields): before
    subsets `subset__*` is just another unknown parameter, before SSE `live_sse` is ignored.
    """
    merged: dict[str, Any] = {}
    subset: dict[str, Any] = {}
    for key, value in query.items():
        if key.startswith("subset__") and len(key) > len("subset__"):
            if server.has("subsets"):
                subset[key.removeprefix("subset__")] = value
        elif key in _MODERN_FIELDS and not server.has(_MODERN_FIELDS[key]):
            continue
        else:
            merged[key] = value
    if subset:
        merged["subset"] = subset
    if body:
        nested = body.get("subset")
        if isinstance(nested, dict):
            merged.update(body)
            merged["subset"] = {**subset, **nested}
        else:
            body_subset = {k: v for k, v in body.items() if k in SUBSET_KEYS}
            merged.update({k: v for k, v in body.items() if k not in SUBSET_KEYS})
            if body_subset:
                merged["subset"] = {**subset, **body_subset}
    merged["live"] = _truthy(merged.get("live"))
    sse_source = merged.get("live_sse", merged.get("experimental_live_sse"))
    merged["live_sse"] = _truthy(sse_source)
    return merged


def validate_params(merged: dict[str, Any], server: ServerVersion) -> RequestParams:
    """Cast and validate like `Params.validate/2` up to "table is present" (else raise)."""
    errors: dict[str, Any] = {}
    table = _cast_string(merged, "table", errors)
    offset_text = _cast_string(merged, "offset", errors)
    handle = _cast_string(merged, "handle", errors)
    where = _cast_string(merged, "where", errors)
    columns = _cast_columns(merged, "columns", errors)
    queryable = _cast_columns(merged, "queryable_columns", errors)
    replica = cast(Replica, _cast_enum(merged, "replica", ("default", "full"), "default", errors))
    log = cast(LogMode, _cast_enum(merged, "log", ("changes_only", "full"), "full", errors))
    params = _cast_string_map(merged, "params", errors)
    _cast_boolean(merged, "experimental_compaction", errors)
    live = bool(merged.get("live"))
    live_sse = bool(merged.get("live_sse"))

    if offset_text is None and "offset" not in errors:
        errors["offset"] = [BLANK]
    if errors:
        raise InvalidRequestError(errors)
    assert offset_text is not None
    try:
        offset = parse_offset(offset_text)
    except OffsetError as error:
        raise InvalidRequestError({"offset": [str(error)]}) from None
    if offset == NOW and not server.has("offset_now"):
        raise InvalidRequestError({"offset": [INVALID_FORMAT]})  # `now` came in 1.1.12
    if offset in (BEFORE_ALL, NOW) and server.ignores_handle_at_start:
        handle = None  # 1.7 deletes it; 1.0.10 keeps it and answers a stale one with 409
    elif handle is None and offset not in (BEFORE_ALL, NOW):
        raise InvalidRequestError({"handle": ["can't be blank when offset != -1"]})
    if live and offset == BEFORE_ALL:
        raise InvalidRequestError({"live": ["can't be true when offset == -1"]})
    if live and offset == NOW:
        raise InvalidRequestError({"live": ["can't be true when offset is 'now'"]})
    if live_sse and not live:
        raise InvalidRequestError({"live_sse": ["can't be true unless live is also true"]})
    if table is None:
        raise InvalidRequestError({"table": [BLANK]})

    cursor = merged.get("cursor")
    subset = merged.get("subset")
    return RequestParams(
        table=table,
        offset=offset,
        handle=handle,
        live=live,
        live_sse=live_sse,
        where=where,
        columns=columns,
        queryable_columns=queryable,
        replica=replica,
        log=log,
        params=params,
        cursor=cursor if isinstance(cursor, str) else None,
        subset=subset if isinstance(subset, dict) else None,
    )


def cast_subset(raw: dict[str, Any]) -> SubsetParams:
    """Cast the subset embed (`SubsetParams.changeset`); errors nest under `subset`."""
    errors: dict[str, Any] = {}
    where = _cast_string(raw, "where", errors)
    order_by = _cast_string(raw, "order_by", errors)
    limit = _cast_integer(raw, "limit", errors)
    offset = _cast_integer(raw, "offset", errors)
    params = _cast_json_or_map(raw, "params", errors)
    if limit is not None and limit <= 0:
        errors.setdefault("limit", []).append("must be greater than 0")
    if offset is not None and offset < 0:
        errors.setdefault("offset", []).append("must be greater than or equal to 0")
    if (limit is not None or offset is not None) and order_by is None:
        errors.setdefault("order_by", []).append(
            "order_by is required when limit or offset is present"
        )
    if errors:
        raise InvalidRequestError({"subset": errors})
    if params:
        try:
            check_param_keys(params)
        except InvalidRequestError as error:
            raise InvalidRequestError({"subset": error.errors}) from None
    return SubsetParams(where=where, params=params, order_by=order_by, limit=limit, offset=offset)


def _truthy(value: object) -> bool:
    # serve_shape_plug.ex: `&(&1 != "false")` - anything but the literal "false" is true.
    return value is not None and value != "false"


def _is_blank(value: object) -> bool:
    # Ecto's default empty value: a string that is empty after trimming.
    return isinstance(value, str) and value.strip() == ""


def _cast_string(source: dict[str, Any], key: str, errors: dict[str, Any]) -> str | None:
    value = source.get(key)
    if value is None or _is_blank(value):
        return None
    if not isinstance(value, str):
        errors[key] = [INVALID]
        return None
    return value


def _cast_columns(
    source: dict[str, Any], key: str, errors: dict[str, Any]
) -> tuple[str, ...] | None:
    value = source.get(key)
    if value is None or _is_blank(value):
        return None
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        if "" in value:
            errors[key] = ["Invalid zero-length identifier"]
            return None
        return tuple(value)
    if not isinstance(value, str):
        errors[key] = [INVALID]
        return None
    try:
        return tuple(parse_columns(value))
    except IdentifierError as error:
        errors[key] = [str(error)]
        return None


def _cast_enum(
    source: dict[str, Any], key: str, allowed: tuple[str, ...], default: str, errors: dict[str, Any]
) -> str:
    value = source.get(key)
    if value is None or _is_blank(value):
        return default
    if value not in allowed:
        errors[key] = [INVALID]
        return default
    return cast(str, value)


def _cast_boolean(source: dict[str, Any], key: str, errors: dict[str, Any]) -> bool:
    value = source.get(key)
    if value is None or _is_blank(value):
        return False
    if isinstance(value, bool):
        return value
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    errors[key] = [INVALID]
    return False


def _cast_integer(source: dict[str, Any], key: str, errors: dict[str, Any]) -> int | None:
    value = source.get(key)
    if value is None or _is_blank(value):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip(), 10)
        except ValueError:
            pass
    errors[key] = [INVALID]
    return None


def _cast_string_map(source: dict[str, Any], key: str, errors: dict[str, Any]) -> dict[str, str]:
    # `params` is Ecto `{:map, :string}`: only the nested form `params[1]=v` casts.
    value: QueryValue | None = source.get(key)
    if value is None or _is_blank(value):
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        errors[key] = [INVALID]
        return {}
    return {k: cast(str, v) for k, v in value.items()}


def _cast_json_or_map(source: dict[str, Any], key: str, errors: dict[str, Any]) -> dict[str, str]:
    # Subset params accept a JSON object string or the map form; values become strings.
    value = source.get(key)
    if value is None or _is_blank(value):
        return {}
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            errors[key] = ["params must be valid JSON"]
            return {}
        if not isinstance(decoded, dict):
            errors[key] = ["params must be a JSON object"]
            return {}
        value = decoded
    if not isinstance(value, dict):
        errors[key] = [INVALID]
        return {}
    return {str(k): _to_string(v) for k, v in value.items()}


def _to_string(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, dict | list) else str(value)
