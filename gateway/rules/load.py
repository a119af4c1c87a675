"""`shape_rules.yaml` -> `Rules`, or every problem at once as `PATH:LINE: key: message`.

The file is composed into YAML nodes (which know their line) and read against a strict schema:
an unknown key lists the accepted ones, a duplicate key is an error (PyYAML would silently keep
the last one), `${VAR}` is expanded from the environment after parsing (so a variable can never
change the document's structure), every where is compiled by PostgreSQL's parser, and a shape
that could leak across tenants (neither public, scoped, nor explicitly `unscoped: true`) does not
load.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import yaml

from gateway.rules.columns import read_client_where, read_column_names
from gateway.rules.model import (
    Grant,
    IdentityMap,
    Limits,
    Routing,
    Rules,
    ShapeRule,
    Upstream,
)
from gateway.rules.nodes import Problem, RulesError, compose_document
from gateway.rules.sections import (
    RulesReader,
    read_identity,
    read_limits,
    read_routing,
    read_upstreams,
)
from gateway.sql.expressions import ExpressionError, parse_expression
from gateway.sql.identifiers import IdentifierError, parse_relation
from gateway.sql.placeholders import CompiledWhere, compile_where
from gateway.sql.scoping import find_pinning

__all__ = ["Problem", "RulesError", "load_rules", "parse_rules"]  # the loader's public face

_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}")
_TABLE_PLACEHOLDER: Final = re.compile(r"\{([^{}]*)\}")
_TENANT_MARK: Final = "tenant_mark_"  # stands for {tenant} while a table template is parsed
_TOP_KEYS: Final = ("version", "identity", "roles", "upstreams", "routing", "shapes", "limits")
_SHAPE_KEYS: Final = (
    "table", "public", "unscoped", "where", "allow", "columns", "client_where", "local_ttl",
    "scope",
)  # fmt: skip
_SCOPES: Final = ("tenant", "user")


def _where(reader: RulesReader, node: yaml.Node, key: str) -> CompiledWhere | None:
    text = reader.string(node, key)
    if not text:
        return None
    try:
        return compile_where(text)
    except ExpressionError as error:
        at = f" (at character {error.position + 1})" if error.position is not None else ""
        reader.problem(node, key, f"{error.message}{at}")
        return None


def _table(reader: RulesReader, node: yaml.Node, key: str) -> str:
    table = reader.string(node, key)
    for match in _TABLE_PLACEHOLDER.finditer(table):
        if match.group(1) != "tenant":
            reader.problem(node, key, f"{{{match.group(1)}}} is not a placeholder; only {{tenant}}")
            return ""
    try:
        parts = parse_relation(table.replace("{tenant}", _TENANT_MARK))
    except IdentifierError as error:
        reader.problem(node, key, str(error))
        return table
    for part, what in zip(parts, ("schema", "table name"), strict=True):
        if _TENANT_MARK in part and not part.replace(_TENANT_MARK, ""):
            reader.problem(
                node,
                key,
                f"{{tenant}} needs fixed text beside it in the {what}, as in "
                f"`tenant_{{tenant}}.documents`: alone, a tenant id names any {what} "
                "(tenant `public` would read public's)",
            )
    if _TENANT_MARK in parts[0] and parts[0].startswith("pg_"):
        reader.problem(node, key, "schema names starting with pg_ are PostgreSQL's own")
    return table


# Where a grant's where is defined (the where's own node and key; the grant's when it has none),
# and whether it compiled: the scoping lint points `check` at that line.
Origin = tuple[yaml.Node, str, bool]


def _grants(
    reader: RulesReader,
    *,
    key: str,
    key_node: yaml.Node,
    entries: dict[str, tuple[yaml.Node, yaml.Node]],
    shape_grant: Grant,
    roles: frozenset[str],
    public: bool,
) -> tuple[dict[str, Grant], dict[str, Origin]]:
    """Role -> Grant from `public`/`allow`; overrides get their own origin for line numbers."""
    where = shape_grant.where
    shape_compiled = "where" not in entries or where is not None
    grants: dict[str, Grant] = {}
    origins: dict[str, Origin] = {}
    allow_node = entries["allow"][1] if "allow" in entries else None
    if public:
        for field in ("where", "allow"):
            if field in entries:
                reader.problem(
                    entries[field][0],
                    f"{key}.{field}",
                    "a public shape is open to every role without a filter; remove "
                    f"`{field}` or `public`",
                )
        grants = dict.fromkeys(sorted(roles), shape_grant)
    elif allow_node is None:
        reader.problem(
            key_node, key, 'needs `allow` (a list of roles, "*" or a role map) or `public: true`'
        )
    elif isinstance(allow_node, yaml.ScalarNode) and allow_node.value == "*":
        grants = dict.fromkeys(sorted(roles), shape_grant)
    elif isinstance(allow_node, yaml.SequenceNode):
        grants = dict.fromkeys(reader.strings(allow_node, f"{key}.allow"), shape_grant)
    elif isinstance(allow_node, yaml.MappingNode):
        for role, (role_node, override) in reader.entries(allow_node, f"{key}.allow").items():
            at = f"{key}.allow.{role}"
            fields = reader.entries(override, at, ("where", "columns"))
            if "where" not in fields and "columns" not in fields:
                grants[role] = shape_grant
                continue
            role_where = (
                _where(reader, fields["where"][1], f"{at}.where") if "where" in fields else where
            )
            role_columns = (
                tuple(reader.strings(fields["columns"][1], f"{at}.columns"))
                if "columns" in fields
                else shape_grant.columns
            )
            grants[role] = Grant(where=role_where, columns=role_columns)
            if "where" in fields:
                origins[role] = (fields["where"][1], f"{at}.where", role_where is not None)
            elif "where" in entries:
                origins[role] = (entries["where"][1], f"{key}.where", shape_compiled)
            else:
                origins[role] = (role_node, at, True)
    else:
        reader.problem(allow_node, f"{key}.allow", 'must be a list of roles, "*" or a role map')
    return grants, origins


def _unpinned(roles: list[str], grant: Grant, table: str) -> str:
    """The scoping lint's message (#8): which term is missing, and the ways to fix it."""
    who = "role " + ", ".join(map(repr, roles))
    table = table or "this table"
    fixes = f"or use a `{{tenant}}` table, or say `unscoped: true` if {table} is shared by design"
    if grant.where is None:
        return (
            f"{who} would read {table} across every tenant: it has no where; add a where "
            f"such as `tenant_id = :tenant`, {fixes}"
        )
    return (
        f"{who}: no top-level AND term pins the caller ({grant.where.pinning_hint}): add "
        "`tenant_id = :tenant` (or `<column> = :user`) as a top-level AND term (a plain column, "
        f"not under OR or NOT); {fixes}"
    )


def _pins_tenant(where: CompiledWhere) -> bool:
    """Whether a top-level AND term pins `:tenant` itself (not only `:user`)."""
    tenant = {n: b for n, b in enumerate(where.bindings, 1) if b == "tenant"}
    return bool(tenant) and find_pinning(parse_expression(where.sql), tenant).pinned


def _user_scoped(roles: list[str], where: CompiledWhere) -> str:
    """The message for a where that pins the user alone, without `scope: user`."""
    who = "role " + ", ".join(map(repr, roles))
    return (
        f"{who}: the where pins :user but not :tenant, so it serves the user's rows in every "
        "tenant: with a token for another tenant, and after the user left this one. Add "
        "`tenant_id = :tenant` as a top-level AND term, or say `scope: user` if these rows "
        "belong to the person rather than to a tenant (they follow the user across tenants)"
    )


def _scope(reader: RulesReader, node: yaml.Node, key: str) -> str:
    scope = reader.string(node, key)
    if scope and scope not in _SCOPES:
        reader.problem(node, key, f"must be {' or '.join(_SCOPES)}, not {scope!r}")
    return scope


def _shape(
    reader: RulesReader, key: str, key_node: yaml.Node, node: yaml.Node, roles: frozenset[str]
) -> ShapeRule | None:
    name = key.split(".", 1)[1]
    if not _NAME.fullmatch(name):
        reader.problem(key_node, key, f"shape names must match {_NAME.pattern}")
    entries = reader.entries(node, key, _SHAPE_KEYS)
    if not entries:
        return None

    def get(field: str, read: Callable[[yaml.Node, str], Any], default: Any) -> Any:
        return read(entries[field][1], f"{key}.{field}") if field in entries else default

    table = get("table", lambda n, k: _table(reader, n, k), "")
    if "table" not in entries:
        reader.problem(key_node, key, "needs a table")
    public = get("public", reader.boolean, False)
    unscoped = get("unscoped", reader.boolean, False)
    where = get("where", lambda n, k: _where(reader, n, k), None)
    columns = get("columns", lambda n, k: read_column_names(reader, n, k), None)
    declared = get("client_where", lambda n, k: read_client_where(reader, n, k), None)
    client_where = declared.columns if declared is not None else None
    scope = get("scope", lambda n, k: _scope(reader, n, k), "tenant")
    local_ttl = get("local_ttl", reader.duration, None)
    allow_node = entries["allow"][1] if "allow" in entries else None

    shape_grant = Grant(where=where, columns=tuple(columns) if columns is not None else None)
    shape_origin: Origin = (
        (entries["where"][1], f"{key}.where", where is not None)
        if "where" in entries
        else (key_node, key, True)
    )
    grants, origins = _grants(
        reader,
        key=key,
        key_node=key_node,
        entries=entries,
        shape_grant=shape_grant,
        roles=roles,
        public=public,
    )
    unknown = sorted(set(grants) - roles)
    if unknown and allow_node is not None:
        reader.problem(
            allow_node,
            f"{key}.allow",
            f"role {', '.join(map(repr, unknown))} is not in roles ({', '.join(sorted(roles))})",
        )
    by_grant: dict[int, list[str]] = {}
    for role, grant in grants.items():
        by_grant.setdefault(id(grant), []).append(role)
    for grant_roles in by_grant.values():
        grant = grants[grant_roles[0]]
        line_node, at, compiled = origins.get(grant_roles[0], shape_origin)
        scoped = "{tenant}" in table or (grant.where is not None and grant.where.scoped)
        if compiled and not (public or unscoped or scoped):
            reader.problem(line_node, at, _unpinned(grant_roles, grant, table))
        elif (
            compiled
            and scoped
            and scope != "user"
            and "{tenant}" not in table
            and grant.where is not None
            and not _pins_tenant(grant.where)
        ):
            reader.problem(line_node, at, _user_scoped(grant_roles, grant.where))
        if client_where and grant.columns is not None:
            hidden = sorted(set(client_where) - set(grant.columns))
            if hidden:
                reader.problem(
                    entries["client_where"][1],
                    f"{key}.client_where",
                    f"{', '.join(hidden)} not in the columns {', '.join(grant_roles)} may "
                    "read; a client could filter on a column it cannot see",
                )
    return ShapeRule(
        name=name,
        table=table,
        grants=grants,
        client_where=client_where,
        client_where_types=declared.types if declared is not None else frozenset(),
        public=public,
        local_ttl=local_ttl,
        line=key_node.start_mark.line + 1,
        scope=scope or "tenant",
    )


def parse_rules(
    text: str, *, path: str, env: Mapping[str, str], default_upstream: Upstream
) -> Rules:
    """Parse rules from `text` (`path` names it in problems); RulesError lists every problem."""
    reader = RulesReader(path, env)
    document = compose_document(text, path)
    top = reader.entries(document, "", _TOP_KEYS)

    version = reader.scalar(top["version"][1], "version") if "version" in top else None
    if version != 1:
        node = top["version"][1] if "version" in top else document
        reader.problem(node, "version", "must be 1")

    identity = read_identity(reader, top["identity"][1]) if "identity" in top else IdentityMap()
    roles: frozenset[str] = frozenset()
    if "roles" not in top:
        reader.problem(document, "roles", "is required: the roles a token may carry")
    else:
        role_list = reader.strings(top["roles"][1], "roles", pattern=_NAME)
        if not role_list and isinstance(top["roles"][1], yaml.SequenceNode):
            reader.problem(top["roles"][1], "roles", "must list at least one role")
        roles = frozenset(role_list)
    upstreams = (
        read_upstreams(reader, top["upstreams"][1], default_upstream)
        if "upstreams" in top
        else {"default": default_upstream}
    )
    routing = read_routing(reader, top["routing"][1], upstreams) if "routing" in top else Routing()
    limits = read_limits(reader, top["limits"][1]) if "limits" in top else Limits()

    shapes: dict[str, ShapeRule] = {}
    if "shapes" not in top:
        reader.problem(document, "shapes", "is required (deny by default: no shapes, no data)")
    else:
        read_shapes = reader.each(
            top["shapes"][1], "shapes", lambda k, kn, n: _shape(reader, k, kn, n, roles)
        )
        shapes = {name: shape for name, shape in read_shapes if shape is not None}
    if reader.problems:
        raise RulesError(reader.problems)
    return Rules(
        identity=identity,
        roles=roles,
        shapes=shapes,
        upstreams=upstreams,
        routing=routing,
        limits=limits,
        path=path,
        digest=hashlib.sha256(text.encode()).hexdigest()[:12],
    )


def load_rules(path: str | Path, *, env: Mapping[str, str], default_upstream: Upstream) -> Rules:
    """Read and parse the rules file at `path`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RulesError([Problem(str(path), 1, "(file)", f"cannot be read: {error}")]) from None
    return parse_rules(text, path=str(path), env=env, default_upstream=default_upstream)
