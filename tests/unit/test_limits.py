"""The in-process limiter (no Redis): the same budgets and caps as the shared one."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from gateway.errors import Code
from gateway.limits import MemoryLimiter, RedisLimiter
from gateway.redis.client import connect_redis
from gateway.rules.model import LimitPlan
from tests.factories import make_identity

PLAN = LimitPlan(requests_per_minute=3, tenant_requests_per_minute=5, live_connections_per_user=2)


async def test_user_budget_is_spent_then_refused_with_retry_after() -> None:
    limiter = MemoryLimiter()
    alice = make_identity()
    assert [(await limiter.take(alice, PLAN)).refusal for _ in range(3)] == [None] * 3
    decision = await limiter.take(alice, PLAN)
    assert decision.refusal is not None
    assert decision.refusal.code is Code.RATE_LIMITED
    assert decision.refusal.retry_after == decision.retry_after
    assert 1 <= decision.retry_after <= 20  # one token comes back every 20 s at 3/min


async def test_tenant_budget_is_shared_by_its_users_only() -> None:
    limiter = MemoryLimiter()
    users = [make_identity(user=f"u{n}") for n in range(6)]
    outcomes = [(await limiter.take(user, PLAN)).refusal for user in users]
    assert [o is None for o in outcomes] == [True] * 5 + [False]
    assert "tenant" in str(outcomes[-1])
    assert (await limiter.take(make_identity(tenant="globex"), PLAN)).refusal is None


async def test_live_slots_are_capped_per_user_and_released() -> None:
    limiter = MemoryLimiter()
    alice = make_identity()
    first, second = await limiter.acquire(alice, PLAN), await limiter.acquire(alice, PLAN)
    assert first is not None
    assert second is not None
    assert await limiter.acquire(alice, PLAN) is None
    assert await limiter.acquire(make_identity(user="bob"), PLAN) is not None
    await limiter.release(alice, first)
    assert await limiter.acquire(alice, PLAN) is not None


@pytest.mark.redis
async def test_requests_in_one_tick_are_charged_together_and_in_order(redis_url: str) -> None:
    # One script call per tenant per event-loop tick: two requests of one user still share a
    # one-request budget (one passes, one is refused), and another tenant is charged apart.
    limiter = RedisLimiter(
        connect_redis(redis_url, "limits-test", replica="t", connections=2),
        f"gw-test-{uuid.uuid4().hex[:8]}",
    )
    plan = LimitPlan(requests_per_minute=1, tenant_requests_per_minute=100)
    alice, globex = make_identity(), make_identity(user="carol", tenant="globex")
    try:
        sent = limiter.batches.sent
        decisions = await asyncio.gather(
            limiter.take(alice, plan), limiter.take(alice, plan), limiter.take(globex, plan)
        )
        assert limiter.batches.sent - sent == 1  # one round trip for all three
        codes = [d.refusal.code if d.refusal else None for d in decisions]
        assert codes == [None, Code.RATE_LIMITED, None]
    finally:
        await limiter.close()


async def test_the_live_cap_is_per_user_across_all_of_the_users_tenants() -> None:
    limiter = MemoryLimiter()
    plan = LimitPlan(live_connections_per_user=1)
    tenants = {"acme": "member", "globex": "member"}
    in_acme = make_identity(memberships=tenants)
    in_globex = make_identity(tenant="globex", memberships=tenants)
    lease = await limiter.acquire(in_acme, plan)
    assert lease is not None
    assert await limiter.acquire(in_globex, plan) is None  # one cap, not one per membership
    await limiter.release(in_acme, lease)
    assert await limiter.acquire(in_globex, plan) is not None
    assert limiter.live.keys() == {"alice"}


@pytest.mark.redis
async def test_the_shared_live_cap_is_per_user_across_all_of_the_users_tenants(
    redis_url: str,
) -> None:
    limiter = RedisLimiter(
        connect_redis(redis_url, "limits-test", replica="t", connections=2),
        f"gw-test-{uuid.uuid4().hex[:8]}",
    )
    plan = LimitPlan(live_connections_per_user=1)
    tenants = {"acme": "member", "globex": "member"}
    in_acme = make_identity(memberships=tenants)
    in_globex = make_identity(tenant="globex", memberships=tenants)
    try:
        lease = await limiter.acquire(in_acme, plan)
        assert lease is not None
        assert await limiter.acquire(in_globex, plan) is None
        assert await limiter.acquire(make_identity(user="bob", tenant="globex"), plan) is not None
        await limiter.release(in_acme, lease)
        async with asyncio.timeout(2):
            while await limiter.acquire(in_globex, plan) is None:  # noqa: ASYNC110 - queued
                await asyncio.sleep(0.01)
    finally:
        await limiter.close()
