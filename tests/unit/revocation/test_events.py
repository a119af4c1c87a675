"""Revocation events: a publisher's event is accepted only with exactly the fields its type
takes, a stream entry becomes the event clients are told of, and a restored entry keeps its
first id and time."""

from __future__ import annotations

import uuid

import pytest

from gateway.auth.identity import MAX_CLAIM_LENGTH
from gateway.revocation.events import (
    MAX_EVENT_ID_LENGTH,
    EventError,
    EventRequest,
    EventType,
    event_from_entry,
    parse_event_request,
    stream_id_key,
    stream_id_seconds,
)


def refusal(data: dict[str, object]) -> str:
    with pytest.raises(EventError) as caught:
        parse_event_request(data)
    return str(caught.value)


def test_each_type_is_accepted_with_its_required_fields() -> None:
    role = parse_event_request({"type": "role.changed", "user": "u", "tenant": "t", "role": "r"})
    assert role == EventRequest(EventType.ROLE_CHANGED, user="u", tenant="t", role="r")
    tenant = parse_event_request({"type": "tenant.reinstated", "tenant": "t", "at": "5"})
    assert tenant == EventRequest(EventType.TENANT_REINSTATED, tenant="t")
    session = parse_event_request({"type": "session.revoked", "user": "u", "session": "s"})
    assert session == EventRequest(EventType.SESSION_REVOKED, user="u", session="s")


def test_an_unknown_type_is_refused_naming_the_accepted_ones() -> None:
    assert refusal({"type": "user.deleted", "user": "u"}) == (
        "type must be one of membership.revoked, role.changed, session.revoked, "
        "tenant.suspended, tenant.reinstated"
    )


def test_a_missing_field_a_field_the_type_does_not_take_and_an_unknown_field_are_refused() -> None:
    assert refusal({"type": "membership.revoked", "user": "u"}) == (
        "membership.revoked needs `tenant`"
    )
    assert refusal({"type": "membership.revoked", "user": "u", "tenant": ""}) == (
        "membership.revoked needs `tenant`"
    )
    assert refusal({"type": "tenant.suspended", "tenant": "t", "session": "s"}) == (
        "tenant.suspended does not take `session`"
    )
    assert refusal({"type": "tenant.suspended", "tenant": "t", "reason": "x"}).startswith(
        "unknown field `reason`"
    )


@pytest.mark.parametrize("value", [7, ["u"], "u" * (MAX_CLAIM_LENGTH + 1)])
def test_a_field_that_is_not_a_short_string_is_refused(value: object) -> None:
    assert "must be a string of at most" in refusal({"type": "session.revoked", "user": value})


@pytest.mark.parametrize("event_id", [" id", "a\tb", "x" * (MAX_EVENT_ID_LENGTH + 1), 12])
def test_an_event_id_that_is_not_a_printable_trimmed_short_string_is_refused(
    event_id: object,
) -> None:
    assert refusal({"type": "session.revoked", "user": "u", "event_id": event_id}).startswith(
        "`event_id` must be a string"
    )


def test_a_request_without_an_event_id_is_named_with_a_new_uuid_and_one_with_it_keeps_it() -> None:
    named = EventRequest(EventType.SESSION_REVOKED, user="u").named()
    assert named.event_id is not None
    uuid.UUID(named.event_id)
    kept = EventRequest(EventType.SESSION_REVOKED, user="u", event_id="mine")
    assert kept.named() is kept


def test_stream_fields_omit_absent_values() -> None:
    request = EventRequest(EventType.MEMBERSHIP_REVOKED, user="u", tenant="t", event_id="e")
    assert request.fields() == {
        "type": "membership.revoked", "user": "u", "tenant": "t", "event_id": "e"
    }  # fmt: skip


def test_a_stream_id_gives_its_whole_seconds_and_orders_by_number_not_text() -> None:
    assert stream_id_seconds("1700000000999-3") == 1700000000
    assert stream_id_key("9-1") < stream_id_key("10-0")
    assert stream_id_key("10") == (10, 0)


def test_an_entry_becomes_the_event_timed_by_its_stream_id() -> None:
    event = event_from_entry(
        "1700000000500-0", {"type": "membership.revoked", "user": "u", "tenant": "t"}
    )
    assert (event.id, event.at, event.user, event.tenant) == (
        "1700000000500-0",
        1700000000,
        "u",
        "t",
    )
    assert not event.is_tenant_event
    assert event_from_entry("1-0", {"type": "tenant.reinstated", "tenant": "t"}).is_tenant_event


def test_a_restored_entry_keeps_its_first_id_and_time() -> None:
    fields = {
        "type": "tenant.suspended",
        "tenant": "t",
        "origin": "1600000000000-4",
        "at": "1600000001",
    }
    event = event_from_entry("1700000000000-0", fields)
    assert (event.id, event.at) == ("1600000000000-4", 1600000001)
    without_at = event_from_entry("1700000000000-0", {**fields, "at": ""})
    assert without_at.at == 1600000000  # from the origin's id, not the restored entry's


def test_an_entry_with_a_hand_written_bad_event_id_is_still_a_revocation() -> None:
    event = event_from_entry("1000-0", {"type": "session.revoked", "user": "u", "event_id": " x "})
    assert (event.user, event.event_id) == ("u", None)


def test_clients_are_told_the_event_without_the_publishers_event_id() -> None:
    event = event_from_entry(
        "2000-1", {"type": "session.revoked", "user": "u", "session": "s", "event_id": "e-1"}
    )
    assert event.event_id == "e-1"
    assert event.as_json() == {
        "id": "2000-1", "type": "session.revoked", "at": 2, "user": "u", "session": "s"
    }  # fmt: skip


def test_a_bad_entry_is_refused_like_a_bad_request() -> None:
    with pytest.raises(EventError):
        event_from_entry("1-0", {"type": "session.revoked"})
