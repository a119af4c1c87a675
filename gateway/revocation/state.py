"""The in-memory view that answers "is this identity revoked?" on the hot path (pure).

No I/O and no clock of its own: events are applied in stream order, `now` is passed in. Every
answer is a dict lookup, so a request never waits on Redis.

Applying is order-safe: a stream restored after Redis lost entries may hold an event after one
published later (a copy is appended at the end). User events keep the latest time per key, and
a tenant's suspension or reinstatement counts only if it is newer (by original id) than the
last one applied for that tenant. An event is applied once by its id, and once by its
publisher's event_id: a publish repeated because its outcome was unknown may have reached two
Redis masters during a failover, and a re-suspension must not outlive the reinstatement that
followed it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.auth.identity import Identity
from gateway.errors import Code, Refusal
from gateway.revocation.events import (
    EventType,
    RevocationEvent,
    stream_id_key,
    stream_id_seconds,
)

ALL_SESSIONS = ""


@dataclass(slots=True)
class RevocationState:
    retention: int  # seconds revocations are kept: JWT_MAX_TTL + leeway
    memberships: dict[tuple[str, str], int] = field(default_factory=dict)  # (user, tenant) -> at
    roles: dict[tuple[str, str], int] = field(default_factory=dict)
    sessions: dict[tuple[str, str], int] = field(default_factory=dict)  # (user, sid or "") -> at
    suspended: dict[str, RevocationEvent] = field(default_factory=dict)  # tenant -> event
    seen: set[str] = field(default_factory=set)  # event ids applied (restores repeat them)
    named: dict[str, int] = field(default_factory=dict)  # publishers' event_ids applied -> at
    # tenant -> id of its last suspension or reinstatement; one entry per tenant, never pruned
    tenant_order: dict[str, tuple[int, int]] = field(default_factory=dict)

    def apply(self, event: RevocationEvent) -> bool:
        """Apply once; False if this event id was already applied, or is a tenant event older
        than the last one applied for its tenant."""
        if event.id in self.seen or (event.event_id is not None and event.event_id in self.named):
            return False
        if event.is_tenant_event and event.tenant:
            order = stream_id_key(event.id)
            if self.tenant_order.get(event.tenant, (-1, -1)) >= order:
                return False
            self.tenant_order[event.tenant] = order
        self.seen.add(event.id)
        if event.event_id is not None:
            self.named[event.event_id] = event.at
        if event.type is EventType.TENANT_SUSPENDED and event.tenant:
            self.suspended[event.tenant] = event
        elif event.type is EventType.TENANT_REINSTATED and event.tenant:
            self.suspended.pop(event.tenant, None)
        elif event.type is EventType.MEMBERSHIP_REVOKED and event.user and event.tenant:
            _keep_latest(self.memberships, (event.user, event.tenant), event.at)
        elif event.type is EventType.ROLE_CHANGED and event.user and event.tenant:
            _keep_latest(self.roles, (event.user, event.tenant), event.at)
        elif event.type is EventType.SESSION_REVOKED and event.user:
            _keep_latest(self.sessions, (event.user, event.session or ALL_SESSIONS), event.at)
        return True

    def check(self, identity: Identity) -> Refusal | None:
        """The refusal for a request by `identity`, or None if nothing revokes it."""
        suspension = self.suspended.get(identity.tenant)
        if suspension is not None:
            return Refusal(
                Code.TENANT_SUSPENDED,
                f"tenant {identity.tenant!r} is suspended; contact its administrator",
            )
        issued = identity.issued_at
        for session in (ALL_SESSIONS, identity.session):
            at = self.sessions.get((identity.user, session)) if session is not None else None
            if at is not None and issued <= at:
                return Refusal(Code.SESSION_REVOKED, "this session was ended; sign in again")
        at = self.memberships.get((identity.user, identity.tenant))
        if at is not None and issued <= at:
            return Refusal(
                Code.ACCESS_REVOKED,
                f"your access to tenant {identity.tenant!r} was revoked; delete its local data",
            )
        at = self.roles.get((identity.user, identity.tenant))
        if at is not None and issued <= at:
            return Refusal(Code.TOKEN_STALE, "your role changed; refresh your token and retry")
        return None

    def membership_revoked(self, user: str, tenant: str, issued_at: int) -> bool:
        at = self.memberships.get((user, tenant))
        return at is not None and issued_at <= at

    def role_stale(self, user: str, tenant: str, issued_at: int) -> bool:
        at = self.roles.get((user, tenant))
        return at is not None and issued_at <= at

    def prune(self, now: float) -> None:
        """Forget revocations older than the retention: every token they could affect has
        expired (exp - iat <= JWT_MAX_TTL). Suspensions stay until reinstated."""
        cutoff = now - self.retention
        for table in (self.memberships, self.roles, self.sessions):
            for key in [k for k, at in table.items() if at < cutoff]:
                del table[key]
        keep = {event.id for event in self.suspended.values()}
        self.seen = {i for i in self.seen if i in keep or stream_id_seconds(i) >= cutoff}
        kept = {event.event_id for event in self.suspended.values()}
        self.named = {n: at for n, at in self.named.items() if n in kept or at >= cutoff}


def _keep_latest(table: dict[tuple[str, str], int], key: tuple[str, str], at: int) -> None:
    if table.get(key, -1) < at:
        table[key] = at
