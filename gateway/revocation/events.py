"""Revocation events: the one format shared by the admin API, the CLI, the Redis stream and
the SSE feed (docs/revocation.md). Pure: parsing, validation, serialisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Final

from gateway.auth.identity import MAX_CLAIM_LENGTH


class EventType(StrEnum):
    MEMBERSHIP_REVOKED = "membership.revoked"
    ROLE_CHANGED = "role.changed"
    SESSION_REVOKED = "session.revoked"
    TENANT_SUSPENDED = "tenant.suspended"
    TENANT_REINSTATED = "tenant.reinstated"


# Which fields each type requires and allows (beyond `type`).
REQUIRED: Final = {
    EventType.MEMBERSHIP_REVOKED: ("user", "tenant"),
    EventType.ROLE_CHANGED: ("user", "tenant", "role"),
    EventType.SESSION_REVOKED: ("user",),
    EventType.TENANT_SUSPENDED: ("tenant",),
    EventType.TENANT_REINSTATED: ("tenant",),
}
OPTIONAL: Final = {EventType.SESSION_REVOKED: ("session",)}
FIELDS: Final = ("user", "tenant", "role", "session")


class EventError(ValueError):
    """An event that cannot be accepted; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class EventRequest:
    """What a publisher asks for; the store assigns the id and the time."""

    type: EventType
    user: str | None = None
    tenant: str | None = None
    role: str | None = None
    session: str | None = None

    def fields(self) -> dict[str, str]:
        """Redis stream entry fields (absent values omitted)."""
        return {k: v for k, v in asdict(self).items() if v is not None} | {"type": self.type.value}


@dataclass(frozen=True, slots=True)
class RevocationEvent:
    id: str  # the Redis stream id ("<ms>-<seq>"): ordered, and what SSE `id:` carries
    type: EventType
    at: int  # event time in whole seconds; tokens with iat <= at are affected
    user: str | None = None
    tenant: str | None = None
    role: str | None = None
    session: str | None = None

    @property
    def is_tenant_event(self) -> bool:
        return self.type in (EventType.TENANT_SUSPENDED, EventType.TENANT_REINSTATED)

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None} | {"type": self.type.value}


def parse_event_request(data: Mapping[str, Any]) -> EventRequest:
    """Validate a publisher's event: a known type and exactly the fields that type takes."""
    kind = data.get("type")
    try:
        event_type = EventType(str(kind))
    except ValueError:
        accepted = ", ".join(t.value for t in EventType)
        raise EventError(f"type must be one of {accepted}") from None
    required = REQUIRED[event_type]
    allowed = set(required) | set(OPTIONAL.get(event_type, ()))
    values: dict[str, str] = {}
    for name in FIELDS:
        value = data.get(name)
        if value is None or value == "":
            if name in required:
                raise EventError(f"{event_type.value} needs `{name}`")
            continue
        if name not in allowed:
            raise EventError(f"{event_type.value} does not take `{name}`")
        if not isinstance(value, str) or len(value) > MAX_CLAIM_LENGTH:
            raise EventError(f"`{name}` must be a string of at most {MAX_CLAIM_LENGTH} characters")
        values[name] = value
    unknown = set(data) - {"type", *FIELDS, "at", "origin"}
    if unknown:
        raise EventError(
            f"unknown field `{sorted(unknown)[0]}`; accepted: type, {', '.join(FIELDS)}"
        )
    return EventRequest(type=event_type, **values)


def stream_id_seconds(stream_id: str) -> int:
    """Whole seconds of a Redis stream id `<ms>-<seq>` (Redis assigns it from its clock)."""
    return int(stream_id.split("-", 1)[0]) // 1000


def stream_id_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def event_from_entry(stream_id: str, fields: Mapping[str, str]) -> RevocationEvent:
    """A stream entry -> event. `origin`/`at` are set when a replica restored the stream after
    Redis lost it: the event keeps its first id and time. Raises EventError."""
    request = parse_event_request(fields)
    origin = fields.get("origin") or stream_id
    at = fields.get("at")
    return RevocationEvent(
        id=origin,
        type=request.type,
        at=int(at) if at and at.isdigit() else stream_id_seconds(origin),
        user=request.user,
        tenant=request.tenant,
        role=request.role,
        session=request.session,
    )
