"""Failed admin authentications are limited per client address; other addresses, and the
oldest addresses beyond the bound, are not held against anyone."""

from __future__ import annotations

import pytest

from gateway.errors import Code, Refusal
from gateway.web.middleware.admin_guard import AdminFailures


def test_an_address_that_spent_its_failures_is_refused_with_a_retry_after() -> None:
    failures = AdminFailures(per_minute=3)
    for _ in range(3):
        failures.check("10.0.0.1", 0.0)
        failures.fail("10.0.0.1", 0.0)
    with pytest.raises(Refusal) as refused:
        failures.check("10.0.0.1", 0.0)
    assert refused.value.code is Code.RATE_LIMITED
    assert refused.value.retry_after == 20  # one failure comes back every 60 / 3 s
    failures.check("10.0.0.2", 0.0)  # another address is not held to it
    failures.check("10.0.0.1", 20.0)  # nor this one once a failure came back


def test_only_the_most_recent_addresses_are_remembered() -> None:
    failures = AdminFailures(per_minute=1, max_addresses=2)
    for address in ("a", "b", "c"):
        failures.fail(address, 0.0)
    failures.check("a", 0.0)  # forgotten: the oldest beyond the bound
    with pytest.raises(Refusal):
        failures.check("c", 0.0)
