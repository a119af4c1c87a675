"""Two rules files compared by effect: for every (shape, role), what a token can now read that
it could not (a widening), what it can no longer read (a narrowing), and what limits changed.

Wheres compare as sets of top-level AND terms in canonical SQL with `:placeholders`
(`conjuncts`): dropping a term widens, adding one narrows, and changing one is both, so it
counts as a widening. Anything that sends data somewhere else (a shape's table, an upstream's
URL, routing) or reads tokens differently (the identity map, a new role) is a widening too.
Limits decide how much, not what, so they are their own kind and never a widening.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from gateway.rules.model import Grant, IdentityMap, LimitPlan, Rules, ShapeRule
from gateway.rulesops.conjuncts import render_conjuncts
from gateway.sql.identifiers import IdentifierError, format_relation, parse_relation


class Kind(StrEnum):
    WIDENING = "widening"
    NARROWING = "narrowing"
    LIMITS = "limits"


@dataclass(frozen=True, slots=True)
class Change:
    kind: Kind
    subject: str  # a shape name, "roles", or a setting's path: identity.tenant, limits.default...
    aspect: str  # access, where, columns, table, public, client_where, upstream, routing, ...
    message: str
    roles: tuple[str, ...] = ()  # the roles it concerns; empty: not one role's access
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


def _terms(grant: Grant) -> list[str]:
    if grant.where is None:
        return []
    names = dict(enumerate(grant.where.bindings, 1))
    return render_conjuncts(grant.where.sql, names=names)


def _summary(grant: Grant) -> str:
    where = " AND ".join(_terms(grant)) or "(none: every row)"
    columns = ", ".join(grant.columns) if grant.columns is not None else "(all)"
    return f"where {where}; columns {columns}"


def _minus(left: Iterable[str], right: Iterable[str]) -> tuple[str, ...]:
    exclude = set(right)
    return tuple(item for item in left if item not in exclude)


def _grant_changes(shape: str, role: str, old: Grant | None, new: Grant | None) -> list[Change]:
    def change(kind: Kind, aspect: str, message: str, **lists: tuple[str, ...]) -> Change:
        return Change(kind, shape, aspect, message, (role,), **lists)

    if old is None and new is None:
        return []
    if old is None:
        assert new is not None
        return [change(Kind.WIDENING, "access", f"newly allowed: {_summary(new)}")]
    if new is None:
        return [change(Kind.NARROWING, "access", "now refused")]
    found = []
    old_terms, new_terms = _terms(old), _terms(new)
    lost, gained = _minus(old_terms, new_terms), _minus(new_terms, old_terms)
    if lost:
        message = "where lost " + " AND ".join(lost)
        if gained:
            message += "; gained " + " AND ".join(gained) + " (a changed term counts as widened)"
        found.append(change(Kind.WIDENING, "where", message, added=gained, removed=lost))
    elif gained:
        message = "where gained " + " AND ".join(gained)
        found.append(change(Kind.NARROWING, "where", message, added=gained))
    if old.columns is not None and new.columns is None:
        message = f"columns: every column (was {', '.join(old.columns)})"
        found.append(change(Kind.WIDENING, "columns", message))
    elif old.columns is None and new.columns is not None:
        message = f"columns: only {', '.join(new.columns)} (was every column)"
        found.append(change(Kind.NARROWING, "columns", message, added=new.columns))
    elif old.columns is not None and new.columns is not None:
        added, removed = _minus(new.columns, old.columns), _minus(old.columns, new.columns)
        if added:
            message = f"columns added: {', '.join(added)}"
            found.append(change(Kind.WIDENING, "columns", message, added=added))
        if removed:
            message = f"columns removed: {', '.join(removed)}"
            found.append(change(Kind.NARROWING, "columns", message, removed=removed))
    return found


def _canonical_table(template: str) -> str:
    """`tasks` and `public.tasks` name the same table; `{tenant}` survives the round trip."""
    marker = "gw_tenant_placeholder"
    try:
        relation = format_relation(*parse_relation(template.replace("{tenant}", marker)))
    except IdentifierError:
        return template
    return relation.replace(marker, "{tenant}")


def _shape_changes(name: str, old: ShapeRule, new: ShapeRule) -> list[Change]:
    found = []
    if _canonical_table(old.table) != _canonical_table(new.table):
        message = f"table {old.table} -> {new.table} (the data comes from elsewhere)"
        found.append(Change(Kind.WIDENING, name, "table", message))
    if old.public != new.public:
        kind = Kind.WIDENING if new.public else Kind.NARROWING
        message = f"public: {str(old.public).lower()} -> {str(new.public).lower()}"
        found.append(Change(kind, name, "public", message))
    old_cw, new_cw = old.client_where, new.client_where
    if old_cw is None and new_cw is not None:
        added = tuple(sorted(new_cw))
        message = f"client where now accepted, on {', '.join(added)}"
        found.append(Change(Kind.WIDENING, name, "client_where", message, added=added))
    elif old_cw is not None and new_cw is None:
        found.append(
            Change(Kind.NARROWING, name, "client_where", "client where no longer accepted")
        )
    elif old_cw is not None and new_cw is not None:
        added, removed = tuple(sorted(new_cw - old_cw)), tuple(sorted(old_cw - new_cw))
        if added:
            message = f"client where may now use {', '.join(added)}"
            found.append(Change(Kind.WIDENING, name, "client_where", message, added=added))
        if removed:
            message = f"client where may no longer use {', '.join(removed)}"
            found.append(Change(Kind.NARROWING, name, "client_where", message, removed=removed))
    return found


def _grant(rules: Rules, shape: str, role: str) -> Grant | None:
    rule = rules.shapes.get(shape)
    return rule.grants.get(role) if rule is not None and role in rules.roles else None


def _access_changes(old: Rules, new: Rules) -> list[Change]:
    found = []
    added, removed = sorted(new.roles - old.roles), sorted(old.roles - new.roles)
    if added:
        message = f"added {', '.join(added)} (tokens with them were refused as unknown_role)"
        found.append(Change(Kind.WIDENING, "roles", "roles", message, added=tuple(added)))
    if removed:
        message = f"removed {', '.join(removed)} (their tokens are refused as unknown_role)"
        found.append(Change(Kind.NARROWING, "roles", "roles", message, removed=tuple(removed)))
    for shape in sorted(old.shapes.keys() | new.shapes.keys()):
        if shape in old.shapes and shape in new.shapes:
            found += _shape_changes(shape, old.shapes[shape], new.shapes[shape])
        for role in sorted(old.roles | new.roles):
            found += _grant_changes(shape, role, _grant(old, shape, role), _grant(new, shape, role))
    return found


def _shown(value: object) -> str:
    return "(none)" if value is None else str(value)


def _setting_changes(
    section: str,
    old: Mapping[str, object],
    new: Mapping[str, object],
    kind: Kind,
    *,
    why: str = "",
    removed: tuple[Kind, str] | None = None,
) -> list[Change]:
    """One change per key whose value differs, `why` saying what it means; `removed` gives the
    kind and meaning of a key that went away, when they differ."""
    found = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        change_kind, meaning = kind, why
        if removed is not None and before is not None and after is None:
            change_kind, meaning = removed
        message = f"{_shown(before)} -> {_shown(after)}{meaning}"
        found.append(Change(change_kind, f"{section}.{key}", section, message))
    return found


def _identity_changes(old: IdentityMap, new: IdentityMap) -> list[Change]:
    """A different claim for user, tenant or role reads every token differently."""
    claims = ("user", "tenant", "role")
    found = _setting_changes(
        "identity",
        {name: getattr(old, name) for name in claims},
        {name: getattr(new, name) for name in claims},
        Kind.WIDENING,
        why=" (tokens are read differently)",
    )
    found += _setting_changes(
        "identity",
        {"memberships": old.memberships},
        {"memberships": new.memberships},
        Kind.WIDENING,
        why=" (X-Tenant-Id may pick any tenant this claim lists)",
        removed=(Kind.NARROWING, " (X-Tenant-Id can no longer switch tenants)"),
    )
    found += _setting_changes(
        "identity", {"plan": old.plan}, {"plan": new.plan}, Kind.LIMITS, why=" (which limits apply)"
    )
    return found


def _destination_changes(old: Rules, new: Rules) -> list[Change]:
    """Upstream URLs and routing: a change sends some tenant's data somewhere else."""
    found = _setting_changes(
        "upstreams",
        {name: upstream.url for name, upstream in old.upstreams.items()},
        {name: upstream.url for name, upstream in new.upstreams.items()},
        Kind.WIDENING,
        why=" (data goes elsewhere)",
        removed=(Kind.NARROWING, " (requests routed to it are refused)"),
    )

    def routing(rules: Rules) -> dict[str, object]:
        pins = {f"tenants.{tenant}": name for tenant, name in rules.routing.tenants.items()}
        return {"claim": rules.routing.claim, **pins}

    found += _setting_changes(
        "routing", routing(old), routing(new), Kind.WIDENING, why=" (data goes elsewhere)"
    )
    return found


def _plan_values(plan: LimitPlan) -> dict[str, object]:
    return {name: getattr(plan, name) for name in LimitPlan.__dataclass_fields__}


def _limit_changes(old: Rules, new: Rules) -> list[Change]:
    """How much, not what: reported on their own, never a widening."""
    found = _setting_changes(
        "limits.default",
        _plan_values(old.limits.default),
        _plan_values(new.limits.default),
        Kind.LIMITS,
    )
    for name in sorted(old.limits.plans.keys() | new.limits.plans.keys()):
        before, after = old.limits.plans.get(name), new.limits.plans.get(name)
        subject = f"limits.plans.{name}"
        if before is None:
            assert after is not None
            values = ", ".join(f"{k} {v}" for k, v in _plan_values(after).items())
            found.append(Change(Kind.LIMITS, subject, "limits", f"plan added: {values}"))
        elif after is None:
            message = "plan removed (its tokens get limits.default)"
            found.append(Change(Kind.LIMITS, subject, "limits", message))
        else:
            found += _setting_changes(
                subject, _plan_values(before), _plan_values(after), Kind.LIMITS
            )
    return found


def _merge_roles(changes: list[Change]) -> list[Change]:
    """One change per (shape, what changed), listing every role it concerns."""
    merged: dict[Change, Change] = {}
    for change in changes:
        key = dataclasses.replace(change, roles=())
        previous = merged.get(key)
        roles = previous.roles + change.roles if previous is not None else change.roles
        merged[key] = dataclasses.replace(change, roles=roles)
    return list(merged.values())


ORDER = {Kind.WIDENING: 0, Kind.NARROWING: 1, Kind.LIMITS: 2}


def diff_rules(old: Rules, new: Rules) -> list[Change]:
    """Every change in effect from `old` to `new`: widenings first, then narrowings, limits."""
    changes = _merge_roles(_access_changes(old, new))
    changes += _identity_changes(old.identity, new.identity) + _destination_changes(old, new)
    changes += _limit_changes(old, new)
    return sorted(changes, key=lambda change: ORDER[change.kind])


def widened(changes: Iterable[Change]) -> bool:
    return any(change.kind is Kind.WIDENING for change in changes)
