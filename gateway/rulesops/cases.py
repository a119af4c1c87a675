"""Rule test files (`shape_rules.test.yaml`) -> `Case`s, or every problem as `PATH:LINE: key: ...`.

A case names an identity, a request and what must happen: `allowed` (optionally with the
planned table, where terms, bound values, columns, upstream and, against a database, row
assertions) or `refused` with an error code. Expected where terms and row assertions are parsed
by PostgreSQL's parser here, at load, so a typo is a load problem with its line, not a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml

from gateway.errors import Code
from gateway.rules.load import Problem, RulesError
from gateway.rulesops.conjuncts import expected_conjuncts
from gateway.rulesops.model import (
    DECIDED_BY_RULES,
    Allowed,
    Case,
    IdentitySpec,
    Refused,
    RequestSpec,
)
from gateway.rulesops.nodes import NodeReader, compose_document, line_of
from gateway.sql.expressions import ExpressionError, deparse_expression, parse_expression

_TOP: Final = ("version", "identities", "cases")
_CASE: Final = ("name", "identity", "request", "allowed", "refused")
_IDENTITY: Final = ("user", "tenant", "role", "memberships", "plan", "claims")
_REQUEST: Final = ("shape", "where", "params", "columns", "subset", "x_tenant_id")
_ALLOWED: Final = (
    "table", "where", "params", "columns", "upstream", "rows_visible_only_where", "min_rows",
    "database",
)  # fmt: skip


def _identity(reader: NodeReader, node: yaml.Node, key: str) -> IdentitySpec:
    entries = reader.mapping(node, key, _IDENTITY)

    def text(name: str) -> str | None:
        return reader.string(entries[name], f"{key}.{name}") if name in entries else None

    memberships = entries.get("memberships")
    claims = reader.mapping(entries["claims"], f"{key}.claims") if "claims" in entries else {}
    return IdentitySpec(
        user=text("user"),
        tenant=text("tenant"),
        role=text("role"),
        memberships=None
        if memberships is None
        else reader.string_map(memberships, f"{key}.memberships"),
        plan=text("plan"),
        claims={name: reader.data(value) for name, value in claims.items()},
    )


def _params(reader: NodeReader, node: yaml.Node, key: str) -> dict[int, str]:
    """`[a, b]` (params 1, 2) or `{1: a, 2: b}`."""
    if isinstance(node, yaml.SequenceNode):
        return {n: reader.string(item, key) for n, item in enumerate(node.value, 1)}
    params: dict[int, str] = {}
    for name, value in reader.mapping(node, key).items():
        if not name.isdigit() or name.startswith("0"):
            reader.problem(value, f"{key}.{name}", "parameter numbers are 1, 2, ...")
        else:
            params[int(name)] = reader.string(value, f"{key}.{name}")
    return params


def _subset_params(params: list[Any] | dict[Any, Any]) -> dict[str, Any]:
    """A body's `params` as JSON would carry them: `{"1": "value"}`, numbers as their text (as
    `request.params` reads them), so `[1]` means parameter 1 is "1"."""
    items = enumerate(params, 1) if isinstance(params, list) else params.items()
    return {
        str(n): str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
        for n, v in items
    }


def _request(reader: NodeReader, node: yaml.Node, key: str) -> RequestSpec:
    if isinstance(node, yaml.ScalarNode):  # `request: tasks` is the shape alone
        return RequestSpec(shape=reader.string(node, key))
    entries = reader.mapping(node, key, _REQUEST)
    if "shape" not in entries:
        reader.problem(node, key, "needs a shape")
    subset = None
    if "subset" in entries:
        reader.mapping(entries["subset"], f"{key}.subset")  # duplicate keys reported
        subset = reader.data(entries["subset"])
        if isinstance(subset, dict) and isinstance(subset.get("params"), list | dict):
            subset["params"] = _subset_params(subset["params"])
    columns = None
    if "columns" in entries:
        columns = ",".join(reader.strings(entries["columns"], f"{key}.columns"))
    return RequestSpec(
        shape=reader.string(entries["shape"], f"{key}.shape") if "shape" in entries else "",
        where=reader.string(entries["where"], f"{key}.where") if "where" in entries else None,
        params=_params(reader, entries["params"], f"{key}.params") if "params" in entries else {},
        columns=columns,
        subset=subset,
        x_tenant_id=reader.string(entries["x_tenant_id"], f"{key}.x_tenant_id")
        if "x_tenant_id" in entries
        else None,
    )


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _where_terms(reader: NodeReader, node: yaml.Node, key: str) -> tuple[str, ...]:
    terms: list[str] = []
    for text in reader.strings(node, key):
        try:
            terms += expected_conjuncts(text)
        except ExpressionError as error:
            reader.problem(node, key, f"{text!r} does not parse: {error.message}")
    return tuple(terms)


def _assertion(reader: NodeReader, node: yaml.Node, key: str) -> str | None:
    text = reader.string(node, key)
    try:
        return deparse_expression(parse_expression(text)) if text else None
    except ExpressionError as error:
        reader.problem(node, key, f"must be one SQL boolean expression: {error.message}")
        return None


def _allowed(reader: NodeReader, node: yaml.Node, key: str) -> Allowed:
    if isinstance(node, yaml.ScalarNode):
        if reader.scalar(node, key) is not True:
            reader.problem(node, key, "must be true or a mapping of expectations (or use refused)")
        return Allowed()
    entries = reader.mapping(node, key, _ALLOWED)
    values: dict[str, Any] = {}
    if "table" in entries:
        values["table"] = reader.string(entries["table"], f"{key}.table")
    if "where" in entries:
        if _is_null(entries["where"]):
            values["unfiltered"] = True
        else:
            values["where"] = _where_terms(reader, entries["where"], f"{key}.where")
    if "params" in entries:
        values["params"] = tuple(reader.strings(entries["params"], f"{key}.params"))
    if "columns" in entries:
        if _is_null(entries["columns"]):
            values["all_columns"] = True
        else:
            values["columns"] = tuple(reader.strings(entries["columns"], f"{key}.columns"))
    if "upstream" in entries:
        values["upstream"] = reader.string(entries["upstream"], f"{key}.upstream")
    if "rows_visible_only_where" in entries:
        values["rows_visible_only_where"] = _assertion(
            reader, entries["rows_visible_only_where"], f"{key}.rows_visible_only_where"
        )
    if "min_rows" in entries:
        values["min_rows"] = reader.integer(entries["min_rows"], f"{key}.min_rows", minimum=0)
    if "database" in entries:
        values["database"] = reader.boolean(entries["database"], f"{key}.database")
    return Allowed(**values)


def _refused(reader: NodeReader, node: yaml.Node, key: str) -> Refused:
    text = reader.string(node, key)
    if text in DECIDED_BY_RULES:
        return Refused(Code(text))
    if text:
        codes = ", ".join(DECIDED_BY_RULES)
        reader.problem(node, key, f"{text!r} is not a code the rules decide; one of: {codes}")
    return Refused(Code.SHAPE_NOT_ALLOWED)  # never run: the file does not load


def _case(
    reader: NodeReader, node: yaml.Node, key: str, identities: Mapping[str, IdentitySpec]
) -> Case | None:
    entries = reader.mapping(node, key, _CASE)
    if not entries:
        return None
    for required in ("identity", "request"):
        if required not in entries:
            reader.problem(node, key, f"needs {required}")
    identity = IdentitySpec()
    if "identity" in entries:
        identity_node = entries["identity"]
        if isinstance(identity_node, yaml.ScalarNode):
            name = reader.string(identity_node, f"{key}.identity")
            if name and name not in identities:
                known = ", ".join(sorted(identities)) or "none are defined"
                reader.problem(identity_node, f"{key}.identity", f"no identity {name!r}: {known}")
            identity = identities.get(name, identity)
        else:
            identity = _identity(reader, identity_node, f"{key}.identity")
    request = RequestSpec(shape="")
    if "request" in entries:
        request = _request(reader, entries["request"], f"{key}.request")
    if ("allowed" in entries) == ("refused" in entries):
        reader.problem(node, key, "needs exactly one of `allowed` and `refused`")
        return None
    expect: Allowed | Refused = (
        _allowed(reader, entries["allowed"], f"{key}.allowed")
        if "allowed" in entries
        else _refused(reader, entries["refused"], f"{key}.refused")
    )
    name = reader.string(entries["name"], f"{key}.name") if "name" in entries else ""
    return Case(reader.path, line_of(node), name or key, identity, request, expect)


def parse_cases(text: str, *, path: str) -> list[Case]:
    """Parse a rule test file; RulesError lists every problem in it."""
    reader = NodeReader(path)
    document = compose_document(text, path)
    top = reader.mapping(document, "", _TOP)
    if "version" in top and reader.scalar(top["version"], "version") != 1:
        reader.problem(top["version"], "version", "must be 1")
    identities = {}
    if "identities" in top:
        for name, node in reader.mapping(top["identities"], "identities").items():
            identities[name] = _identity(reader, node, f"identities.{name}")
    cases = []
    if "cases" not in top:
        reader.problem(document, "cases", "is required: a list of cases")
    else:
        items = reader.sequence(top["cases"], "cases")
        if not items and isinstance(top["cases"], yaml.SequenceNode):
            reader.problem(top["cases"], "cases", "must list at least one case")
        for index, item in enumerate(items):
            case = _case(reader, item, f"cases[{index}]", identities)
            if case is not None:
                cases.append(case)
    reader.raise_problems()
    return cases


def load_cases(path: str | Path) -> list[Case]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RulesError([Problem(str(path), 1, "(file)", f"cannot be read: {error}")]) from None
    return parse_cases(text, path=str(path))
