"""Shape-log messages exactly as Electric writes them (`log_items.ex`, `querying.ex`).

Snapshot rows are `{"key","value","headers"}` in the order Electric's SQL builds them. Change
messages come from Elixir maps whose atom-key order is an accident of the VM, so we use the
order of Electric's documented examples. Column names (string keys) are sorted, as Jason writes
them. Values are strings or null; keys follow `Changes.build_key/3`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def encode(value: object) -> str:
    """Compact JSON without ASCII escaping, like Jason."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def build_key(schema: str, table: str, record: Mapping[str, str | None], pk: Sequence[str]) -> str:
    """`"schema"."table"/"v1"/"v2"`: values quoted with `/` doubled, NULL as `_`, and `/`, `.`
    doubled in the names (`Changes.build_key/3`)."""
    prefix = f'"{_escape_rel(schema)}"."{_escape_rel(table)}"'
    return prefix + "".join(_pk_section(record.get(column)) for column in pk)


def snapshot_row(
    schema: str,
    table: str,
    value: Mapping[str, str | None],
    pk: Sequence[str],
    *,
    mark: int | None = None,
) -> str:
    """An initial-snapshot (or subset) insert, keys in the order Electric's SQL writes them."""
    headers: dict[str, Any] = {"operation": "insert", "relation": [schema, table]}
    if mark is not None:
        headers["snapshot_mark"] = mark
    return encode(
        {"key": build_key(schema, table, value, pk), "value": dict(value), "headers": headers}
    )


def change_message(
    *,
    key: str,
    operation: str,
    relation: tuple[str, str],
    value: Mapping[str, str | None],
    lsn: int,
    op_position: int,
    txid: int,
    last: bool = False,
    old_value: Mapping[str, str | None] | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> str:
    """A replicated change; `lsn` is a string and `op_position` an int, as Electric sends them."""
    headers: dict[str, Any] = {
        "operation": operation,
        "relation": list(relation),
        "txids": [txid],
        "lsn": str(lsn),
        "op_position": op_position,
        **(extra_headers or {}),
    }
    if last:
        headers["last"] = True
    message: dict[str, Any] = {"key": key, "value": _sorted(value), "headers": headers}
    if old_value is not None:
        message["old_value"] = _sorted(old_value)
    return encode(message)


def up_to_date(lsn: int) -> str:
    """The control message that ends a response at the head of the log."""
    return encode({"headers": {"control": "up-to-date", "global_last_seen_lsn": str(lsn)}})


def snapshot_end(xmin: int, xmax: int, xip_list: Sequence[int]) -> str:
    """Ends the initial snapshot; the uint64 fields are strings so JavaScript keeps them exact."""
    return encode(
        {
            "headers": {
                "control": "snapshot-end",
                "xmin": str(xmin),
                "xmax": str(xmax),
                "xip_list": [str(xid) for xid in xip_list],
            }
        }
    )


MUST_REFETCH = encode([{"headers": {"control": "must-refetch"}}])


def _escape_rel(name: str) -> str:
    return name.replace("/", "//").replace(".", "..")


def _pk_section(value: str | None) -> str:
    return "/_" if value is None else '/"' + value.replace("/", "//") + '"'


def _sorted(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {key: mapping[key] for key in sorted(mapping)}
