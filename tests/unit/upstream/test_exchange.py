"""The exchange's fan-out rules, on an exchange fed by hand: the key is the rewritten request,
the upstream is read at the fastest client's pace, and only a client a whole buffer behind
another is dropped (a lone one never is)."""

from __future__ import annotations

import dataclasses

from gateway.metrics import Metrics
from gateway.rules.model import Upstream
from gateway.upstream.client import Timeouts, UpstreamPool
from gateway.upstream.exchange import PACE, Exchange, Exchanges, Member
from tests.unit.upstream.test_connection import request

UPSTREAM = Upstream("default", "http://127.0.0.1:9", "the-secret")
EU = Upstream("eu", "http://127.0.0.1:8", "the-secret")  # the same secret, another address
BUFFER = 4 * PACE


def exchanges(*, collapse: bool = True) -> Exchanges:
    return Exchanges(UpstreamPool(), Timeouts(), Metrics(), collapse=collapse, client_buffer=BUFFER)


def fed(members: int) -> tuple[Exchange, list[Member]]:
    registry = exchanges()
    exchange = Exchange(registry, b"key", request(UPSTREAM), "GET")
    joined = [Member(exchange, joined=i > 0) for i in range(members)]
    exchange.members.update(joined)
    return exchange, joined


async def test_identical_rewritten_requests_join_and_any_difference_does_not() -> None:
    registry = exchanges()
    planned = request(UPSTREAM)
    first = registry.join(planned, "GET", {"Accept": "*/*"})
    same = registry.join(planned, "GET", {"Accept": "*/*", "Authorization": "Bearer other"})
    other_value = dataclasses.replace(
        planned, query=(*planned.query[:2], ("params[1]", "globex"), planned.query[3])
    )
    others = [
        registry.join(other_value, "GET", {"Accept": "*/*"}),
        registry.join(planned, "GET", {"Accept": "text/event-stream"}),
        registry.join(planned, "HEAD", {"Accept": "*/*"}),
        registry.join(dataclasses.replace(planned, upstream=EU), "GET", {"Accept": "*/*"}),
        registry.join(planned, "POST", {"Accept": "*/*"}, b'{"where":"a"}'),
        registry.join(planned, "POST", {"Accept": "*/*"}, b'{"where":"b"}'),
    ]  # fmt: skip
    assert same.exchange is first.exchange  # Authorization never reaches Electric
    assert (first.joined, same.joined) == (False, True)
    assert len({id(m.exchange) for m in [first, *others]}) == len(others) + 1
    await registry.close()


async def test_with_collapse_off_nothing_joins() -> None:
    registry = exchanges(collapse=False)
    planned = request(UPSTREAM)
    a, b = registry.join(planned, "GET", {}), registry.join(planned, "GET", {})
    assert a.exchange is not b.exchange
    assert not b.joined
    await registry.close()


def test_a_lone_client_is_never_dropped_however_far_behind() -> None:
    exchange, (alone,) = fed(1)
    for _ in range(20):
        exchange._deliver(b"x" * PACE)
    assert not alone.dropped
    assert alone.buffered == 20 * PACE


def test_a_client_a_whole_buffer_behind_the_fastest_is_dropped_and_the_rest_go_on() -> None:
    exchange, (fast, slow) = fed(2)
    chunk = b"x" * PACE
    for _ in range(BUFFER // PACE):
        exchange._deliver(chunk)
        fast.buffered = 0  # the fast one writes everything at once
    assert not slow.dropped
    assert slow.buffered == BUFFER
    exchange._deliver(chunk)
    assert [slow.dropped, fast.dropped] == [True, False]
    assert exchange.members == {fast}
    assert exchange.registry.metrics.slow_reader_drops._value.get() == 1


def test_a_late_joiner_is_replayed_what_was_received_until_the_bound() -> None:
    exchange, _ = fed(1)
    exchange._deliver(b"first")
    late = Member(exchange, joined=True)
    assert (late._chunks, late.buffered) == ([b"first"], 5)
    exchange._deliver(b"y" * exchange.registry.retained)  # past the bound: no more joiners
    assert exchange.retained is None
