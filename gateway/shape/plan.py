"""The core decision: (client query, identity, rules) -> UpstreamRequest, or a Refusal.

Pure: no I/O, no clock, no globals, no state. `shape-gateway explain`, the tests and the serving
path all make the same decision (`plan_definition`, then `place` at the client's position; the
serving path keeps each caller's definitions in `gateway/decisions.py`), so what ops inspect is
exactly what traffic gets. The upstream query is rebuilt from scratch: the table, the rule's
where and its bound values, the columns and the secret come from the rules; from the client only
checked protocol values are carried over.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Protocol
from urllib.parse import quote

from yarl import URL

from gateway.auth.identity import MAX_CLAIM_LENGTH, Identity
from gateway.errors import Code, Refusal
from gateway.rules.model import Grant, Rules, ShapeRule, Upstream
from gateway.shape.client_where import CheckedWhere, check_client_where, check_order_by
from gateway.shape.params import ShapeQuery
from gateway.sql.identifiers import (
    IdentifierError,
    format_column_list,
    format_relation,
    parse_relation,
)

TENANT_IN_TABLE: Final = re.compile(r"[a-z0-9-]{1,48}")
SHARED_SCHEMAS: Final = frozenset({"public", "information_schema"})  # and every pg_*
SHAPE_PATH: Final = "/v1/shape"
# What `quote(value, safe="")` leaves as it is; and that with ":" (which it writes %3A).
_PLAIN: Final = re.compile(r"[A-Za-z0-9_.~-]*")
_PLAIN_OR_COLON: Final = re.compile(r"[A-Za-z0-9_.~:-]*")


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """What the gateway will ask Electric; `query` excludes the secret, `url()` adds it."""

    shape: str
    table: str
    upstream: Upstream
    where: str | None
    params: tuple[str, ...]  # params[1..n]; values, never logged
    sources: tuple[str, ...]  # what each param is bound to: user, tenant, claims.X, client
    columns: tuple[str, ...] | None
    query: tuple[tuple[str, str], ...]
    live: bool
    sse: bool
    subset: bool
    local_ttl: int | None = None  # the rule's `local_ttl` in seconds: a response header
    # `query` percent-encoded (without the secret), when the planner made it; None: encoded
    # when sent. A decision kept for a caller keeps its encoded parts, so a poll encodes only
    # its position.
    target: str | None = None

    def url(self, *, redact: bool = False) -> URL:
        query = list(self.query)
        if self.upstream.secret:
            query.append(("secret", "REDACTED" if redact else self.upstream.secret))
        return URL(self.upstream.url + SHAPE_PATH).with_query(query)


def _quote(text: str) -> str:
    """`quote(text, safe="")`, without its cost for text it would leave as it is."""
    return text if _PLAIN.fullmatch(text) else quote(text, safe="")


def encode_query(pairs: Iterable[tuple[str, str]]) -> str:
    """`name=value&...`, every name and value percent-encoded (nothing left as the client
    spelled it)."""
    return "&".join(f"{_quote(name)}={_quote(value)}" for name, value in pairs)


def _encode_position(position: list[tuple[str, str]]) -> str:
    """`encode_query(position)`, the way a poll's offset, handle and cursor allow: checked
    for plain characters at once (the names are), then only `:` needs encoding."""
    if _PLAIN_OR_COLON.fullmatch("".join(value for _, value in position)):
        return "&".join(f"{name}={value}" for name, value in position).replace(":", "%3A")
    return encode_query(position)


class Checks(Protocol):
    """How the planner checks a client's where and order-by: the pure functions (`PLAIN`), or
    the same with their results kept by the one decisions cache (`gateway/decisions.py`)."""

    def client_where(
        self,
        text: str,
        allowed: frozenset[str],
        shift: int,
        what: str,
        types: frozenset[tuple[str, str]],
    ) -> CheckedWhere: ...

    def order_by(self, text: str, readable: frozenset[str] | None) -> str: ...


class _Plain:
    def client_where(
        self,
        text: str,
        allowed: frozenset[str],
        shift: int,
        what: str,
        types: frozenset[tuple[str, str]],
    ) -> CheckedWhere:
        return check_client_where(text, allowed, shift, what, types)

    def order_by(self, text: str, readable: frozenset[str] | None) -> str:
        return check_order_by(text, readable)


PLAIN: Final[Checks] = _Plain()


def _bind(binding: str, identity: Identity) -> str:
    if binding == "user":
        return identity.user
    if binding == "tenant":
        return identity.tenant
    if binding == "role":
        return identity.role
    claim = binding.removeprefix("claims.")
    value = identity.claims.get(claim)
    if not value or len(value) > MAX_CLAIM_LENGTH:
        raise Refusal(
            Code.MISSING_CLAIM,
            f"this shape needs the token claim {claim!r} as a non-empty string; "
            "ask your identity provider to include it",
        )
    return value


def _table(shape: ShapeRule, identity: Identity) -> str:
    table = shape.table
    if shape.per_tenant_table:
        if not TENANT_IN_TABLE.fullmatch(identity.tenant):
            raise Refusal(
                Code.INVALID_TENANT,
                "this shape keeps each tenant in its own schema, and tenant ids used there must "
                "be 1-48 characters of a-z, 0-9 and '-'",
            )
        table = table.replace("{tenant}", identity.tenant.replace("-", "_"))
    try:
        schema, name = parse_relation(table)
    except IdentifierError as error:  # only reachable if the template itself is odd
        raise Refusal(
            Code.INVALID_TENANT, f"tenant id does not form a table name: {error}"
        ) from None
    if (
        shape.per_tenant_table
        and (schema in SHARED_SCHEMAS or schema.startswith("pg_"))
        and _tenant_names_schema(shape.table)
    ):
        # The tenant id made the schema a shared one (`{tenant}_schema` with tenant
        # `information`): the rows there belong to no tenant.
        raise Refusal(
            Code.INVALID_TENANT,
            f"tenant id {identity.tenant!r} would name the shared schema {schema!r}; "
            "it cannot be used with this shape",
        )
    return format_relation(schema, name)


def _tenant_names_schema(template: str) -> bool:
    """Whether `{tenant}` is in the template's schema (rather than in its table name)."""
    schemas = {parse_relation(template.replace("{tenant}", t))[0] for t in ("a", "b")}
    return len(schemas) > 1


def _columns(query: ShapeQuery, grant: Grant) -> tuple[str, ...] | None:
    if query.columns is None or grant.columns is None:
        return query.columns or grant.columns
    allowed = set(grant.columns)
    for column in query.columns:
        if column not in allowed:
            raise Refusal(
                Code.COLUMN_NOT_ALLOWED,
                f"column {column!r} is not among the columns this shape offers you: "
                f"{', '.join(grant.columns)}",
            )
    return query.columns


def _client_columns(shape: ShapeRule, what: str) -> frozenset[str]:
    if shape.client_where is None:
        raise Refusal(
            Code.WHERE_NOT_ALLOWED,
            f"shape {shape.name!r} does not accept a client {what}; drop it from the request",
        )
    return shape.client_where


def _check_params(checked: CheckedWhere, given: dict[int, str], what: str, name: str) -> None:
    expected = checked.param_count
    if set(given) != set(range(1, expected + 1)):
        raise Refusal(
            Code.INVALID_WHERE,
            f"{what} uses {expected} parameter(s); send exactly "
            + (", ".join(f"{name}[{n}]" for n in range(1, expected + 1)) or f"no {name}"),
        )
    for number, value in given.items():  # Electric reads each as the type its $n meets
        problem = checked.param_problem(number, value)
        if problem:
            raise Refusal(Code.INVALID_WHERE, f"{what}: {name}[{number}] {problem}")


def _upstream(identity: Identity, rules: Rules) -> Upstream:
    routing = rules.routing
    name = routing.tenants.get(identity.tenant)
    if name is None and routing.claim is not None:
        name = identity.claims.get(routing.claim)
    upstream = rules.upstreams.get(name or "default")
    if upstream is None:
        raise Refusal(
            Code.UPSTREAM_MISCONFIGURED,
            f"no upstream is configured for {routing.claim} {name!r}; tell the operator",
        )
    return upstream


@dataclass(frozen=True, slots=True)
class Definition:
    """The part of a plan that does not depend on where the client is in the shape's log: what
    a caller's every poll of one shape definition shares (`gateway/decisions.py` keeps it)."""

    shape: str
    table: str
    upstream: Upstream
    where: str | None
    params: tuple[str, ...]
    sources: tuple[str, ...]
    columns: tuple[str, ...] | None
    head: tuple[tuple[str, str], ...]  # table, where, params, columns, replica, log
    tail: tuple[tuple[str, str], ...]  # subset parameters
    local_ttl: int | None
    encoded_head: str  # `head` and `tail` percent-encoded: sent on every poll
    encoded_tail: str

    @property
    def size(self) -> int:
        """Estimated bytes held: the text of its pairs, plain and encoded."""
        text = sum(len(name) + len(value) for name, value in (*self.head, *self.tail))
        return text + len(self.encoded_head) + len(self.encoded_tail)


def plan_upstream_request(
    query: ShapeQuery, identity: Identity, rules: Rules, checks: Checks = PLAIN
) -> UpstreamRequest:
    """Decide what `identity` may ask Electric for with `query`. Raises Refusal.

    Pure and stateless: a decision a caller repeats is kept by `gateway/decisions.py`, which
    calls `plan_definition` and `place` itself.
    """
    return place(plan_definition(query, identity, rules, checks), query)


def place(definition: Definition, query: ShapeQuery) -> UpstreamRequest:
    """The upstream request for `definition` at the client's position in the shape's log."""
    position: list[tuple[str, str]] = [
        (name, value)
        for name, value in (
            ("offset", query.offset),
            ("handle", query.handle),
            ("cursor", query.cursor),
            ("expired_handle", query.expired_handle),
            ("cache-buster", query.cache_buster),
        )
        if value is not None
    ]
    if query.live:
        position.append(("live", "true"))
    if query.sse:
        position += [("live_sse", "true"), ("experimental_live_sse", "true")]
    target = "&".join(
        part
        for part in (definition.encoded_head, _encode_position(position), definition.encoded_tail)
        if part
    )
    return UpstreamRequest(
        shape=definition.shape,
        table=definition.table,
        upstream=definition.upstream,
        where=definition.where,
        params=definition.params,
        sources=definition.sources,
        columns=definition.columns,
        query=(*definition.head, *position, *definition.tail),
        live=query.live,
        sse=query.live and query.sse,
        subset=query.subset is not None,
        local_ttl=definition.local_ttl,
        target=target,
    )


def plan_definition(
    query: ShapeQuery, identity: Identity, rules: Rules, checks: Checks = PLAIN
) -> Definition:
    """The position-free part of the decision (`place` adds the position). Raises Refusal."""
    if identity.role not in rules.roles:
        raise Refusal(
            Code.UNKNOWN_ROLE,
            f"role {identity.role[:64]!r} is not one this gateway knows; check the token's role",
        )
    shape = rules.shapes.get(query.shape)
    if shape is None:
        raise Refusal(
            Code.UNKNOWN_SHAPE, f"there is no shape named {query.shape[:128]!r}; check `table`"
        )
    grant = shape.grants.get(identity.role)
    if grant is None:
        raise Refusal(
            Code.SHAPE_NOT_ALLOWED,
            f"role {identity.role!r} may not read shape {shape.name!r}",
        )
    table = _table(shape, identity)

    where_parts: list[str] = []
    params: list[str] = []
    sources: list[str] = []
    if grant.where is not None:
        where_parts.append(grant.where.sql)
        params += [_bind(binding, identity) for binding in grant.where.bindings]
        sources += grant.where.bindings
    columns = _columns(query, grant)
    if query.where is not None:
        checked = checks.client_where(
            query.where, _client_columns(shape, "where"), len(params), "where",
            shape.client_where_types,
        )  # fmt: skip
        _check_params(checked, dict(query.params), "where", "params")
        where_parts.append(checked.sql)
        params += [query.params[n] for n in range(1, checked.param_count + 1)]
        sources += ["client"] * checked.param_count
    elif query.params:
        raise Refusal(Code.INVALID_PARAMETER, "params[n] were sent without a where that uses them")
    where = (
        " AND ".join(f"({part})" for part in where_parts)
        if len(where_parts) > 1
        else (where_parts[0] if where_parts else None)
    )

    head: list[tuple[str, str]] = [("table", table)]
    if where is not None:
        head.append(("where", where))
        head += [(f"params[{n}]", value) for n, value in enumerate(params, 1)]
    if columns is not None:
        head.append(("columns", format_column_list(columns)))
    for name, value in (("replica", query.replica), ("log", query.log)):
        if value is not None:
            head.append((name, value))
    tail = tuple(_subset(query, shape, grant, checks)) if query.subset is not None else ()
    return Definition(
        shape=shape.name,
        table=table,
        upstream=_upstream(identity, rules),
        where=where,
        params=tuple(params),
        sources=tuple(sources),
        columns=columns,
        head=tuple(head),
        tail=tail,
        local_ttl=shape.local_ttl,
        encoded_head=encode_query(head),
        encoded_tail=encode_query(tail),
    )


def _subset(
    query: ShapeQuery, shape: ShapeRule, grant: Grant, checks: Checks
) -> list[tuple[str, str]]:
    """Subset parameters: Electric ANDs them with the main where; we check them like `where`.

    `subset__order_by` may name any column the role can read (#8): TanStack DB's on-demand
    sync orders by arbitrary columns, and a shape needs no `client_where` to be ordered.
    """
    subset = query.subset
    assert subset is not None
    out: list[tuple[str, str]] = []
    if subset.where is not None:
        allowed = _client_columns(shape, "subset__where")
        checked = checks.client_where(
            subset.where, allowed, 0, "subset__where", shape.client_where_types
        )
        _check_params(checked, dict(subset.params), "subset__where", "subset__params")
        out.append(("subset__where", checked.sql))
        if subset.params:
            out.append(
                ("subset__params", json.dumps({str(k): v for k, v in subset.params.items()}))
            )
    elif subset.params:
        raise Refusal(Code.INVALID_PARAMETER, "subset__params were sent without a subset__where")
    if subset.limit is not None:
        out.append(("subset__limit", str(subset.limit)))
    if subset.offset is not None:
        out.append(("subset__offset", str(subset.offset)))
    if subset.order_by is not None:
        readable = frozenset(grant.columns) if grant.columns is not None else None
        out.append(("subset__order_by", checks.order_by(subset.order_by, readable)))
    return out


def plan(query: ShapeQuery, identity: Identity, rules: Rules) -> UpstreamRequest | Refusal:
    """`plan_upstream_request` with the refusal returned instead of raised."""
    try:
        return plan_upstream_request(query, identity, rules)
    except Refusal as refusal:
        return refusal
