"""The rules as the planner reads them: frozen values, built once per (re)load by `load.py`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.sql.placeholders import CompiledWhere


@dataclass(frozen=True, slots=True)
class IdentityMap:
    """Which claims of a verified token carry the user, tenant, role, memberships and plan."""

    user: str = "sub"
    tenant: str = "tid"
    role: str = "role"
    memberships: str | None = None
    plan: str | None = None


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    url: str
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Routing:
    """Data residency: a claim naming an upstream, and tenants pinned to one (pins win)."""

    claim: str | None = None
    tenants: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Grant:
    """What one role may read of one shape: its where (None: no filter) and column allow-list."""

    where: CompiledWhere | None
    columns: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class ShapeRule:
    name: str
    table: str  # a relation, possibly with `{tenant}`; parsed at load, filled per request
    grants: Mapping[str, Grant]  # role -> grant; a role absent here is refused
    client_where: frozenset[str] | None = None
    client_where_types: frozenset[tuple[str, str]] = frozenset()  # (column, declared type)
    public: bool = False
    local_ttl: int | None = None  # seconds a client may keep the rows locally (`local_ttl`)
    line: int = 0
    scope: str = "tenant"  # "user": rows pinned to the user alone, in every tenant (`scope: user`)

    @property
    def per_tenant_table(self) -> bool:
        return "{tenant}" in self.table


@dataclass(frozen=True, slots=True)
class LimitPlan:
    requests_per_minute: int = 600
    tenant_requests_per_minute: int = 6000
    live_connections_per_user: int = 10


@dataclass(frozen=True, slots=True)
class Limits:
    default: LimitPlan = field(default_factory=LimitPlan)
    plans: Mapping[str, LimitPlan] = field(default_factory=dict)

    def plan_for(self, name: str | None) -> LimitPlan:
        return self.plans.get(name, self.default) if name else self.default


@dataclass(frozen=True, slots=True)
class Rules:
    identity: IdentityMap
    roles: frozenset[str]
    shapes: Mapping[str, ShapeRule]
    upstreams: Mapping[str, Upstream]  # always has "default"
    routing: Routing = field(default_factory=Routing)
    limits: Limits = field(default_factory=Limits)
    path: str = ""
    # sha256 of the file, first 12 hex digits: logged with every decision, and part of the key
    # of every decision kept (gateway/decisions.py), so a reload never serves an old one
    digest: str = ""
