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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import yaml

from gateway.rules.model import (
    Grant,
    IdentityMap,
    LimitPlan,
    Limits,
    Routing,
    Rules,
    ShapeRule,
    Upstream,
)
from gateway.sql.expressions import ExpressionError
from gateway.sql.identifiers import IdentifierError, parse_relation
from gateway.sql.placeholders import CompiledWhere, compile_where

_VAR: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}")
_TABLE_PLACEHOLDER: Final = re.compile(r"\{([^{}]*)\}")
_TOP_KEYS: Final = ("version", "identity", "roles", "upstreams", "routing", "shapes", "limits")
_SHAPE_KEYS: Final = ("table", "public", "unscoped", "where", "allow", "columns", "client_where")
_PLAN_KEYS: Final = tuple(LimitPlan.__dataclass_fields__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.key}: {self.message}"


class RulesError(Exception):
    """The rules did not load; `problems` lists all of them, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: (p.line, p.key)))
        super().__init__("\n".join(map(str, self.problems)))


class _Reader:
    """Reads YAML nodes against the schema, collecting problems instead of stopping at one."""

    def __init__(self, path: str, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env
        self.problems: list[Problem] = []
        self._scalars = yaml.SafeLoader("")

    def problem(self, node: yaml.Node, key: str, message: str) -> None:
        self.problems.append(Problem(self.path, node.start_mark.line + 1, key, message))

    def mapping(
        self, node: yaml.Node, key: str, accepted: tuple[str, ...] | None = None
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """Key -> (key node, value node); unknown and duplicate keys reported."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, key, "must be a mapping")
            return {}
        entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            name = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            where = f"{key}.{name}" if key else str(name)
            if not isinstance(name, str):
                self.problem(key_node, key, "keys must be plain strings")
            elif name in entries:
                self.problem(key_node, where, "duplicate key (YAML would silently keep the last)")
            elif accepted is not None and name not in accepted:
                self.problem(key_node, where, f"unknown key; accepted: {', '.join(accepted)}")
            else:
                entries[name] = (key_node, value_node)
        return entries

    def scalar(self, node: yaml.Node, key: str) -> object:
        if not isinstance(node, yaml.ScalarNode):
            self.problem(node, key, "must be a single value")
            return None
        return self._scalars.construct_object(node)

    def string(self, node: yaml.Node, key: str, *, pattern: re.Pattern[str] | None = None) -> str:
        value = self.scalar(node, key)
        if not isinstance(value, str) or not value:
            if value is not None or isinstance(node, yaml.ScalarNode):
                self.problem(node, key, "must be a non-empty string")
            return ""
        value = self.expand(node, key, value)
        if pattern is not None and value and not pattern.fullmatch(value):
            self.problem(node, key, f"{value!r} must match {pattern.pattern}")
        return value

    def expand(self, node: yaml.Node, key: str, value: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.env:
                self.problem(node, key, f"environment variable {name} is not set")
                return ""
            return self.env[name]

        return _VAR.sub(replace, value)

    def boolean(self, node: yaml.Node, key: str) -> bool:
        value = self.scalar(node, key)
        if not isinstance(value, bool):
            self.problem(node, key, "must be true or false")
            return False
        return value

    def integer(self, node: yaml.Node, key: str, minimum: int = 1) -> int:
        value = self.scalar(node, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.problem(node, key, f"must be a whole number of at least {minimum}")
            return minimum
        return value

    def strings(
        self, node: yaml.Node, key: str, *, pattern: re.Pattern[str] | None = None
    ) -> list[str]:
        """A list of unique non-empty strings."""
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, key, "must be a list")
            return []
        values: list[str] = []
        for item in node.value:
            value = self.string(item, key, pattern=pattern)
            if value in values:
                self.problem(item, key, f"{value!r} is listed twice")
            elif value:
                values.append(value)
        return values

    def each(
        self, node: yaml.Node, key: str, read: Callable[[str, yaml.Node, yaml.Node], T]
    ) -> Iterator[tuple[str, T]]:
        for name, (key_node, value_node) in self.mapping(node, key).items():
            yield name, read(f"{key}.{name}", key_node, value_node)


def _identity(reader: _Reader, node: yaml.Node) -> IdentityMap:
    entries = reader.mapping(node, "identity", tuple(IdentityMap.__dataclass_fields__))
    values = {
        name: reader.string(value, f"identity.{name}") for name, (_, value) in entries.items()
    }
    for required in ("user", "tenant", "role"):
        if required in entries and not values[required]:
            values.pop(required)
    return IdentityMap(**values)


def _upstreams(reader: _Reader, node: yaml.Node, default: Upstream) -> dict[str, Upstream]:
    upstreams = {"default": default}

    def read(key: str, key_node: yaml.Node, value: yaml.Node) -> Upstream:
        entries = reader.mapping(value, key, ("url", "secret"))
        url = reader.string(entries["url"][1], f"{key}.url") if "url" in entries else ""
        if "url" not in entries:
            reader.problem(value, key, "needs a url")
        elif url and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", url):
            reader.problem(entries["url"][1], f"{key}.url", f"{url!r} is not an http(s) URL")
        secret = (
            reader.string(entries["secret"][1], f"{key}.secret") if "secret" in entries else None
        )
        return Upstream(name=key.rsplit(".", 1)[1], url=url.rstrip("/"), secret=secret or None)

    upstreams.update(reader.each(node, "upstreams", read))
    return upstreams


def _routing(reader: _Reader, node: yaml.Node, upstreams: Mapping[str, Upstream]) -> Routing:
    entries = reader.mapping(node, "routing", ("claim", "tenants"))
    claim = reader.string(entries["claim"][1], "routing.claim") if "claim" in entries else None
    tenants: dict[str, str] = {}
    if "tenants" in entries:
        for tenant, (_, value) in reader.mapping(entries["tenants"][1], "routing.tenants").items():
            target = reader.string(value, f"routing.tenants.{tenant}")
            if target and target not in upstreams:
                reader.problem(
                    value,
                    f"routing.tenants.{tenant}",
                    f"no upstream named {target!r}; defined: {', '.join(sorted(upstreams))}",
                )
            tenants[tenant] = target
    return Routing(claim=claim or None, tenants=tenants)


def _limit_plan(reader: _Reader, key: str, node: yaml.Node, base: LimitPlan) -> LimitPlan:
    entries = reader.mapping(node, key, _PLAN_KEYS)
    values = {name: reader.integer(value, f"{key}.{name}") for name, (_, value) in entries.items()}
    return LimitPlan(**{**{n: getattr(base, n) for n in _PLAN_KEYS}, **values})


def _limits(reader: _Reader, node: yaml.Node) -> Limits:
    entries = reader.mapping(node, "limits", ("default", "plans"))
    default = LimitPlan()
    if "default" in entries:
        default = _limit_plan(reader, "limits.default", entries["default"][1], default)
    plans = {}
    if "plans" in entries:
        for name, (_, value) in reader.mapping(entries["plans"][1], "limits.plans").items():
            plans[name] = _limit_plan(reader, f"limits.plans.{name}", value, default)
    return Limits(default=default, plans=plans)


def _where(reader: _Reader, node: yaml.Node, key: str) -> CompiledWhere | None:
    text = reader.string(node, key)
    if not text:
        return None
    try:
        return compile_where(text)
    except ExpressionError as error:
        at = f" (at character {error.position + 1})" if error.position is not None else ""
        reader.problem(node, key, f"{error.message}{at}")
        return None


def _table(reader: _Reader, node: yaml.Node, key: str) -> str:
    table = reader.string(node, key)
    for match in _TABLE_PLACEHOLDER.finditer(table):
        if match.group(1) != "tenant":
            reader.problem(node, key, f"{{{match.group(1)}}} is not a placeholder; only {{tenant}}")
            return ""
    try:
        parse_relation(table.replace("{tenant}", "t"))
    except IdentifierError as error:
        reader.problem(node, key, str(error))
    return table


# Where a grant's where is defined (the where's own node and key; the grant's when it has none),
# and whether it compiled: the scoping lint points `check` at that line.
Origin = tuple[yaml.Node, str, bool]


def _grants(
    reader: _Reader,
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
        for role, (role_node, override) in reader.mapping(allow_node, f"{key}.allow").items():
            at = f"{key}.allow.{role}"
            fields = reader.mapping(override, at, ("where", "columns"))
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


def _shape(
    reader: _Reader, key: str, key_node: yaml.Node, node: yaml.Node, roles: frozenset[str]
) -> ShapeRule | None:
    name = key.split(".", 1)[1]
    if not _NAME.fullmatch(name):
        reader.problem(key_node, key, f"shape names must match {_NAME.pattern}")
    entries = reader.mapping(node, key, _SHAPE_KEYS)
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
    columns = get("columns", reader.strings, None)
    client_where = get("client_where", reader.strings, None)
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
        client_where=frozenset(client_where) if client_where is not None else None,
        public=public,
        line=key_node.start_mark.line + 1,
    )


def parse_rules(
    text: str, *, path: str, env: Mapping[str, str], default_upstream: Upstream
) -> Rules:
    """Parse rules from `text` (`path` names it in problems); RulesError lists every problem."""
    reader = _Reader(path, env)
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise RulesError([Problem(path, line, "(yaml)", str(error).replace("\n", " "))]) from None
    if len(documents) != 1 or documents[0] is None:
        raise RulesError([Problem(path, 1, "(file)", "must hold exactly one YAML document")])
    top = reader.mapping(documents[0], "", _TOP_KEYS)

    version = reader.scalar(top["version"][1], "version") if "version" in top else None
    if version != 1:
        node = top["version"][1] if "version" in top else documents[0]
        reader.problem(node, "version", "must be 1")

    identity = _identity(reader, top["identity"][1]) if "identity" in top else IdentityMap()
    roles: frozenset[str] = frozenset()
    if "roles" not in top:
        reader.problem(documents[0], "roles", "is required: the roles a token may carry")
    else:
        role_list = reader.strings(top["roles"][1], "roles", pattern=_NAME)
        if not role_list and isinstance(top["roles"][1], yaml.SequenceNode):
            reader.problem(top["roles"][1], "roles", "must list at least one role")
        roles = frozenset(role_list)
    upstreams = (
        _upstreams(reader, top["upstreams"][1], default_upstream)
        if "upstreams" in top
        else {"default": default_upstream}
    )
    routing = _routing(reader, top["routing"][1], upstreams) if "routing" in top else Routing()
    limits = _limits(reader, top["limits"][1]) if "limits" in top else Limits()

    shapes: dict[str, ShapeRule] = {}
    if "shapes" not in top:
        reader.problem(documents[0], "shapes", "is required (deny by default: no shapes, no data)")
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
