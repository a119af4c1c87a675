"""Unauthenticated refusals are sampled: a burst is written, then `rate` lines a second, and
the next line written says how many were left out."""

from __future__ import annotations

from gateway.audit.sampling import Sampler


def test_a_burst_is_written_then_lines_are_left_out_and_counted() -> None:
    sampler = Sampler(rate=10.0, burst=3.0, tokens=3.0, at=0.0)
    assert [sampler.take(0.0) for _ in range(3)] == [0, 0, 0]
    assert [sampler.take(0.0) for _ in range(4)] == [None] * 4
    assert sampler.take(0.1) == 4  # one token back after 1/rate s: it says what it left out
    assert sampler.take(0.1) is None


def test_the_bucket_refills_only_up_to_the_burst() -> None:
    sampler = Sampler(rate=10.0, burst=2.0, tokens=0.0, at=0.0)
    assert sampler.take(3600.0) == 0
    assert sampler.take(3600.0) == 0
    assert sampler.take(3600.0) is None
