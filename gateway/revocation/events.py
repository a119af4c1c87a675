"""Revocation events: the one format shared by the admin API, the CLI, the Redis stream and
the SSE feed (docs/revocation.md). Pure: parsing, validation, serialisation.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
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
MAX_EVENT_ID_LENGTH: Final = 128


class EventError(ValueError):
    """An event that cannot be accepted; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class EventRequest:
    """What a publisher asks for; the store assigns the id and the time. `event_id` is the
    publisher's name for the event: publishing the same event_id again adds nothing."""

    type: EventType
    user: str | None = None
    tenant: str | None = None
    role: str | None = None
    session: str | None = None
    event_id: str | None = None

    def fields(self) -> dict[str, str]:
        """Redis stream entry fields (absent values omitted)."""
        return {k: v for k, v in asdict(self).items() if v is not None} | {"type": self.type.value}

    def named(self) -> EventRequest:
        """This request with an event_id: its own, else a new one (a UUID)."""
        return self if self.event_id else replace(self, event_id=new_event_id())


def new_event_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class RevocationEvent:
    id: str  # the Redis stream id ("<ms>-<seq>"): ordered, and what SSE `id:` carries
    type: EventType
    at: int  # event time in whole seconds; tokens with iat <= at are affected
    user: str | None = None
    tenant: str | None = None
    role: str | None = None
    session: str | None = None
    event_id: str | None = None  # the publisher's (absent from entries written without one)

    @property
    def is_tenant_event(self) -> bool:
        return self.type in (EventType.TENANT_SUSPENDED, EventType.TENANT_REINSTATED)

    def as_json(self) -> dict[str, Any]:
        """What clients are told (the feed): the publisher's event_id stays with publishers."""
        fields = {k: v for k, v in asdict(self).items() if v is not None and k != "event_id"}
        return fields | {"type": self.type.value}


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
    unknown = set(data) - {"type", *FIELDS, "event_id", "at", "origin"}
    if unknown:
        raise EventError(
            f"unknown field `{sorted(unknown)[0]}`; accepted: type, {', '.join(FIELDS)}, event_id"
        )
    return EventRequest(type=event_type, **values, event_id=_event_id(data.get("event_id")))


def _event_id(value: object) -> str | None:
    if value is None or value == "":
        return None
    if (
        not isinstance(value, str)
        or len(value) > MAX_EVENT_ID_LENGTH
        or not value.isprintable()
        or value.strip() != value
    ):
        raise EventError(
            f"`event_id` must be a string of at most {MAX_EVENT_ID_LENGTH} printable characters "
            "(a UUID, say), without leading or trailing spaces"
        )
    return value


def stream_id_seconds(stream_id: str) -> int:
    """Whole seconds of a Redis stream id `<ms>-<seq>` (Redis assigns it from its clock)."""
    return int(stream_id.split("-", 1)[0]) // 1000


def stream_id_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def event_from_entry(stream_id: str, fields: Mapping[str, str]) -> RevocationEvent:
    """A stream entry -> event. `origin`/`at` are set when a replica restored the stream after
    Redis lost it: the event keeps its first id and time. An `event_id` that is not one (an
    entry written by hand) is ignored rather than the revocation skipped. Raises EventError."""
    try:
        _event_id(fields.get("event_id"))
    except EventError:
        fields = {k: v for k, v in fields.items() if k != "event_id"}
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
        event_id=request.event_id,
    )
