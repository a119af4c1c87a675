"""Security events: what one stores is bounded, and repeated uncharged refusals of one
principal are folded into one event per window with a count."""

from __future__ import annotations

import json

from gateway.audit.client_events import SECURITY_EVENT_BYTES, LogSink
from gateway.audit.security import FOLD_SECONDS, PATH_BYTES, SecurityEvents, bounded

ALICE = {"status": "429", "method": "GET", "shape": "tasks", "user": "alice", "tenant": "acme",
         "role": "member", "request_id": "0123456789abcdef", "at": "1700000000.000"}  # fmt: skip


def drained(events: SecurityEvents) -> list[dict[str, str]]:
    out = []
    while not events.queue.empty():
        out.append(dict(events.queue.get_nowait()))
    return out


def test_a_long_path_is_cut_to_about_a_kib_and_the_event_says_so() -> None:
    event = bounded({**ALICE, "reason": "not_found", "path": "/v1/shape/" + "é" * 15_000})
    assert len(event["path"].encode()) <= PATH_BYTES
    assert event["path_truncated"] == "true"
    assert event["path_bytes"] == str(len(("/v1/shape/" + "é" * 15_000).encode()))
    assert sum(len(k) + len(v.encode()) for k, v in event.items()) <= SECURITY_EVENT_BYTES


def test_a_short_path_is_kept_whole_and_odd_text_stays_valid_utf8() -> None:
    event = bounded({**ALICE, "reason": "not_found", "path": "/v1/\udcffx", "method": "X" * 99})
    assert "path_truncated" not in event
    assert event["path"] == "/v1/\\udcffx"
    assert event["method"] == "X" * 16
    json.dumps(event).encode()  # storable


def test_repeated_429s_of_one_principal_are_one_event_then_one_summary_per_window() -> None:
    events = SecurityEvents(LogSink(1 << 20), lambda: None)
    start = 1000.0
    for n in range(300):  # 300 refused requests in 3 s
        events.record(
            {**ALICE, "reason": "rate_limited", "path": f"/v1/shape/{n}"}, start + n / 100
        )
    (first,) = drained(events)
    assert (first["reason"], first["folded"], first["path"]) == ("rate_limited", "0", "/v1/shape/0")

    events.sweep(start + FOLD_SECONDS)  # the window closes: one summary of what it folded
    (summary,) = drained(events)
    assert (summary["folded"], summary["path"]) == ("299", "/v1/shape/299")
    events.record({**ALICE, "reason": "rate_limited", "path": "/late"}, start + FOLD_SECONDS + 1)
    assert drained(events) == []  # the summary opened the next window
    events.sweep(start + 2 * FOLD_SECONDS)
    assert [e["folded"] for e in drained(events)] == ["1"]
    events.sweep(start + 3 * FOLD_SECONDS)  # nothing folded: the window is forgotten
    assert drained(events) == []
    events.record({**ALICE, "reason": "rate_limited", "path": "/again"}, start + 3 * FOLD_SECONDS)
    assert [e["folded"] for e in drained(events)] == ["0"]


def test_folding_is_per_principal_and_reason_and_charged_refusals_are_never_folded() -> None:
    events = SecurityEvents(LogSink(1 << 20), lambda: None)
    for n in range(5):
        events.record({**ALICE, "reason": "rate_limited", "path": "/"}, 1000.0 + n)
        events.record({**ALICE, "user": "bob", "reason": "rate_limited", "path": "/"}, 1000.0 + n)
        events.record({**ALICE, "reason": "access_revoked", "path": "/"}, 1000.0 + n)
        events.record({**ALICE, "reason": "invalid_where", "path": "/"}, 1000.0 + n)
    stored = [(e["user"], e["reason"]) for e in drained(events)]
    assert stored.count(("alice", "rate_limited")) == 1
    assert stored.count(("bob", "rate_limited")) == 1
    assert stored.count(("alice", "access_revoked")) == 1  # admission refuses it uncharged
    assert stored.count(("alice", "invalid_where")) == 5  # charged to the request budget
