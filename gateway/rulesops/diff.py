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

from gateway.rules.model import Grant, LimitPlan, Rules, ShapeRule
from gateway.rulesops.conjuncts import render_conjuncts


class Kind(StrEnum):
    WIDENING = "widening"
    NARROWING = "narrowing"
    LIMITS = "limits"


@dataclass(frozen=True, slots=True)
class Change:
    kind: Kind
    subject: str  # a shape name, or the section: "roles", "identity", "upstreams", "limits"
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


def _shape_changes(name: str, old: ShapeRule, new: ShapeRule) -> list[Change]:
    found = []
    if old.table != new.table:
        message = f"table {old.table} -> {new.table} (the data comes from elsewhere)"
        found.append(Change(Kind.WIDENING, name, "table", message))
    if old.public != new.public:
        kind = Kind.WIDENING if new.public else Kind.NARROWING
        found.append(Change(kind, name, "public", f"public: {old.public} -> {new.public}"))
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
        message = f"roles added: {', '.join(added)} (tokens with them were refused)"
        found.append(Change(Kind.WIDENING, "roles", "roles", message, added=tuple(added)))
    if removed:
        message = f"roles removed: {', '.join(removed)} (their tokens are refused)"
        found.append(Change(Kind.NARROWING, "roles", "roles", message, removed=tuple(removed)))
    for shape in sorted(old.shapes.keys() | new.shapes.keys()):
        if shape in old.shapes and shape in new.shapes:
            found += _shape_changes(shape, old.shapes[shape], new.shapes[shape])
        for role in sorted(old.roles | new.roles):
            found += _grant_changes(shape, role, _grant(old, shape, role), _grant(new, shape, role))
    return found


def _setting_changes(
    subject: str, old: Mapping[str, object], new: Mapping[str, object], kind: Kind, why: str
) -> list[Change]:
    """One change per key whose value differs; `why` says what it means."""
    found = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if before != after:
            message = f"{subject}.{key}: {before or '(none)'} -> {after or '(none)'}{why}"
            found.append(Change(kind, subject, key, message))
    return found


def _routing_changes(old: Rules, new: Rules) -> list[Change]:
    """Identity map, upstreams and routing: a change reads tokens or sends data differently."""
    old_map, new_map = old.identity, new.identity
    fields = ("user", "tenant", "role", "memberships")
    identity = _setting_changes(
        "identity",
        {f: getattr(old_map, f) for f in fields},
        {f: getattr(new_map, f) for f in fields},
        Kind.WIDENING,
        " (tokens are read differently)",
    )
    plan = _setting_changes(
        "identity", {"plan": old_map.plan}, {"plan": new_map.plan}, Kind.LIMITS, ""
    )
    urls = _setting_changes(
        "upstreams",
        {name: upstream.url for name, upstream in old.upstreams.items()},
        {name: upstream.url for name, upstream in new.upstreams.items()},
        Kind.WIDENING,
        " (data goes elsewhere)",
    )
    routing = _setting_changes(
        "routing",
        {"claim": old.routing.claim, **{f"tenants.{t}": u for t, u in old.routing.tenants.items()}},
        {"claim": new.routing.claim, **{f"tenants.{t}": u for t, u in new.routing.tenants.items()}},
        Kind.WIDENING,
        " (data goes elsewhere)",
    )
    return identity + plan + urls + routing


def _plan_values(plan: LimitPlan | None) -> dict[str, object]:
    return {} if plan is None else {f: getattr(plan, f) for f in LimitPlan.__dataclass_fields__}


def _limit_changes(old: Rules, new: Rules) -> list[Change]:
    found = []
    plans: dict[str, tuple[LimitPlan | None, LimitPlan | None]] = {
        "default": (old.limits.default, new.limits.default)
    }
    for name in sorted(old.limits.plans.keys() | new.limits.plans.keys()):
        plans[f"plans.{name}"] = (old.limits.plans.get(name), new.limits.plans.get(name))
    for name, (before, after) in plans.items():
        found += _setting_changes(
            f"limits.{name}", _plan_values(before), _plan_values(after), Kind.LIMITS, ""
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
    changes = _merge_roles(_access_changes(old, new)) + _routing_changes(old, new)
    changes += _limit_changes(old, new)
    return sorted(changes, key=lambda change: ORDER[change.kind])


def widened(changes: Iterable[Change]) -> bool:
    return any(change.kind is Kind.WIDENING for change in changes)
