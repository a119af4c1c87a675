"""The in-memory view: each event type's effect on tokens issued before it, and its lifting."""

from __future__ import annotations

import pytest

from gateway.errors import Code
from gateway.revocation.events import (
    EventError,
    EventType,
    RevocationEvent,
    event_from_entry,
    parse_event_request,
)
from gateway.revocation.state import RevocationState
from tests.factories import make_identity

AT = 1_800_000_000
ALICE_ACME = {"user": "alice", "tenant": "acme"}


def event(
    kind: EventType, fields: dict[str, str] | None = None, n: int = 1, **more: str
) -> RevocationEvent:
    values = {**(fields or {}), **more}
    return RevocationEvent(
        id=f"{AT * 1000}-{n}",
        type=kind,
        at=AT,
        user=values.get("user"),
        tenant=values.get("tenant"),
        role=values.get("role"),
        session=values.get("session"),
    )


def code_for(state: RevocationState, iat: int, **who: object) -> Code | None:
    refusal = state.check(make_identity(issued_at=iat, **who))
    return refusal.code if refusal else None


@pytest.mark.parametrize(
    ("kind", "fields", "code"),
    [
        (EventType.MEMBERSHIP_REVOKED, ALICE_ACME, Code.ACCESS_REVOKED),
        (EventType.ROLE_CHANGED, {**ALICE_ACME, "role": "admin"}, Code.TOKEN_STALE),
        (EventType.SESSION_REVOKED, {"user": "alice"}, Code.SESSION_REVOKED),
    ],
)  # fmt: skip
def test_event_refuses_tokens_issued_at_or_before_it_and_not_after(
    kind: EventType, fields: dict[str, str], code: Code
) -> None:
    state = RevocationState(retention=86430)
    state.apply(event(kind, fields))
    assert code_for(state, AT - 100) is code
    assert code_for(state, AT) is code  # same second: the safe side
    assert code_for(state, AT + 1) is None
    assert code_for(state, AT - 100, user="bob") is None
    assert code_for(state, AT - 100, tenant="globex") in (None, Code.SESSION_REVOKED)


def test_session_revocation_of_one_session_spares_the_others() -> None:
    state = RevocationState(retention=86430)
    state.apply(event(EventType.SESSION_REVOKED, user="alice", session="s1"))
    assert code_for(state, AT - 5, session="s1") is Code.SESSION_REVOKED
    assert code_for(state, AT - 5, session="s2") is None
    assert code_for(state, AT - 5) is None


def test_suspension_refuses_every_token_until_reinstated() -> None:
    state = RevocationState(retention=86430)
    state.apply(event(EventType.TENANT_SUSPENDED, tenant="acme"))
    assert code_for(state, AT + 3600) is Code.TENANT_SUSPENDED
    assert code_for(state, AT, tenant="globex") is None
    state.apply(event(EventType.TENANT_REINSTATED, n=2, tenant="acme"))
    assert code_for(state, AT + 3600) is None


def test_an_event_is_applied_once_even_when_delivered_twice() -> None:
    state = RevocationState(retention=86430)
    suspended = event(EventType.TENANT_SUSPENDED, tenant="acme")
    assert state.apply(suspended)
    state.apply(event(EventType.TENANT_REINSTATED, n=2, tenant="acme"))
    assert not state.apply(suspended)  # a restored copy of an old event changes nothing
    assert code_for(state, AT) is None


def test_revocations_are_forgotten_after_the_retention_but_suspensions_are_not() -> None:
    state = RevocationState(retention=100)
    state.apply(event(EventType.MEMBERSHIP_REVOKED, user="alice", tenant="acme"))
    state.apply(event(EventType.TENANT_SUSPENDED, n=2, tenant="globex"))
    state.prune(AT + 101)
    assert state.memberships == {}
    assert "globex" in state.suspended


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"type": "user.deleted"}, "type must be one of"),
        ({"type": "membership.revoked", "user": "a"}, "needs `tenant`"),
        ({"type": "role.changed", "user": "a", "tenant": "t"}, "needs `role`"),
        ({"type": "tenant.suspended", "tenant": "t", "user": "a"}, "does not take `user`"),
        ({"type": "session.revoked", "user": 5}, "must be a string"),
        ({"type": "session.revoked", "user": "a", "when": "now"}, "unknown field `when`"),
        ({"type": "session.revoked", "user": "a", "event_id": 7}, "`event_id` must be a string"),
        ({"type": "session.revoked", "user": "a", "event_id": "x" * 129}, "at most 128"),
        ({"type": "session.revoked", "user": "a", "event_id": "a\nb"}, "printable"),
        ({"type": "session.revoked", "user": "a", "event_id": " a"}, "leading or trailing"),
    ],
)
def test_malformed_events_are_refused_naming_the_field(
    data: dict[str, object], fragment: str
) -> None:
    with pytest.raises(EventError, match=fragment):
        parse_event_request(data)


def test_stream_entries_take_their_time_from_the_redis_id_unless_restored() -> None:
    fresh = event_from_entry("1800000000500-0", {"type": "tenant.suspended", "tenant": "t"})
    assert (fresh.id, fresh.at) == ("1800000000500-0", AT)
    restored = event_from_entry(
        "1900000000000-0",
        {"type": "tenant.suspended", "tenant": "t", "origin": "1800000000500-0", "at": str(AT)},
    )
    assert (restored.id, restored.at) == ("1800000000500-0", AT)


def test_a_tenant_event_older_than_the_last_one_applied_for_its_tenant_changes_nothing() -> None:
    # A restored stream can hold a suspension after the reinstatement that lifted it (a copy
    # is appended at the end): the later decision, by original id, stands.
    state = RevocationState(retention=3600)
    suspended = event(EventType.TENANT_SUSPENDED, tenant="acme", n=1)
    reinstated = event(EventType.TENANT_REINSTATED, tenant="acme", n=2)
    assert state.apply(reinstated)
    assert not state.apply(suspended)
    assert code_for(state, AT + 10, tenant="acme") is None
    assert state.apply(event(EventType.TENANT_SUSPENDED, tenant="acme", n=3))
    assert code_for(state, AT + 10, tenant="acme") is Code.TENANT_SUSPENDED
    assert not state.apply(reinstated)  # seen: applied once only


def test_a_publisher_event_id_travels_with_the_entry_but_not_to_clients() -> None:
    request = parse_event_request({"type": "session.revoked", "user": "a", "event_id": "e-1"})
    assert request.named() is request
    assert request.fields() == {"type": "session.revoked", "user": "a", "event_id": "e-1"}
    applied = event_from_entry("1800000000500-0", request.fields())
    assert applied.event_id == "e-1"
    assert "event_id" not in applied.as_json()
    unnamed = parse_event_request({"type": "session.revoked", "user": "a"})
    assert unnamed.event_id is None
    named = unnamed.named()
    assert named.event_id is not None
    assert named.event_id != unnamed.named().event_id  # a new one each time


def test_an_entry_with_an_event_id_that_is_not_one_is_still_applied() -> None:
    entry = {"type": "session.revoked", "user": "a", "event_id": "x" * 500}
    event = event_from_entry("1800000000500-0", entry)
    assert (event.user, event.event_id) == ("a", None)


def test_an_event_id_is_applied_once_whatever_its_entries() -> None:
    # A publish repeated after an unknown outcome can leave two entries of one event_id (two
    # masters during a failover): the second must change nothing, even after a reinstatement.
    state = RevocationState(retention=3600)
    suspended = RevocationEvent(f"{AT * 1000}-1", EventType.TENANT_SUSPENDED, AT, tenant="acme",
                                event_id="s-1")  # fmt: skip
    reinstated = RevocationEvent(f"{AT * 1000}-2", EventType.TENANT_REINSTATED, AT, tenant="acme")
    again = RevocationEvent(f"{AT * 1000}-3", EventType.TENANT_SUSPENDED, AT, tenant="acme",
                            event_id="s-1")  # fmt: skip
    assert state.apply(suspended)
    assert state.apply(reinstated)
    assert not state.apply(again)
    assert code_for(state, AT + 10, tenant="acme") is None
    state.prune(AT + 3600 + 1)  # past the retention: the event_id is forgotten with the event
    assert "s-1" not in state.named
