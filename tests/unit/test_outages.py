"""Failing dependencies: logged when an outage starts, every 30 s while it lasts, and when it
ends; each with what failed, where and what to check."""

from __future__ import annotations

from structlog.testing import capture_logs

from gateway.outages import REPEAT_SECONDS, Outages


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_is_logged_when_it_starts_while_it_lasts_and_when_it_ends() -> None:
    clock = Clock()
    outages = Outages(clock=clock)
    changes: list[tuple[str, str, bool]] = []

    def listen(kind: str, name: str, *, up: bool) -> None:
        changes.append((kind, name, up))

    outages.listeners.append(listen)
    with capture_logs() as logs:
        for _ in range(10):  # a follower retrying every second: one line, not ten
            outages.failed("redis", "limits", "Connection refused", target="r:6379", hint="h")
            clock.now += 1
        clock.now += REPEAT_SECONDS
        outages.failed("redis", "limits", "Timeout", target="r:6379", hint="h")
        outages.failed("redis", "limits", "Timeout", target="r:6379", hint="h")
        outages.succeeded("redis", "limits")
        outages.succeeded("redis", "limits")  # nothing was failing: nothing to say
    assert [(e["event"], e.get("reason")) for e in logs] == [
        ("redis_unavailable", "Connection refused"),
        ("redis_unavailable", "Timeout"),
        ("redis_recovered", None),
    ]
    first, again, recovered = logs
    assert (first["job"], first["target"], first["check"]) == ("limits", "r:6379", "h")
    assert "for_seconds" not in first
    assert (again["for_seconds"], again["failures"]) == (40, 11)
    assert (recovered["down_seconds"], recovered["failures"]) == (40.0, 12)
    assert changes == [("redis", "limits", False), ("redis", "limits", True)]
    assert outages.of_kind("redis") == {}


def test_each_dependency_has_its_own_outage() -> None:
    outages = Outages()
    with capture_logs() as logs:
        outages.failed("redis", "audit", "x", target="r:6379", hint="h")
        outages.failed("upstream", "eu", "y", target="http://eu:3000", hint="h")
        outages.succeeded("redis", "audit")
    assert [(e["event"], e.get("job"), e.get("upstream")) for e in logs] == [
        ("redis_unavailable", "audit", None),
        ("upstream_unavailable", None, "eu"),
        ("redis_recovered", "audit", None),
    ]
    (outage,) = outages.of_kind("upstream").values()
    assert outage.as_json(outage.started + 2)["for_seconds"] == 2.0
