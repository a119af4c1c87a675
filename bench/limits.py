"""Cost of the limit checks per request: the rate-limit check (`take`) and a live slot
(`acquire` + `release`), in-process and on real Redis (one script call per check).

Run: `python -m bench.limits`. Prints the median per-call time of 5 rounds; the Redis numbers
include the loopback round trip, which is what a request pays.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable

from gateway.auth.identity import Identity
from gateway.limits import Limiter, MemoryLimiter, RedisLimiter
from gateway.redis.client import connect_redis
from gateway.rules.model import LimitPlan

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
PLAN = LimitPlan(requests_per_minute=10**9, tenant_requests_per_minute=10**9,
                 live_connections_per_user=10**6)  # fmt: skip


async def per_call_us(call: Callable[[], Awaitable[object]], n: int) -> float:
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            await call()
        rounds.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(rounds)


async def measure(name: str, limiter: Limiter, n: int) -> dict[str, float]:
    identity = Identity(user="alice", tenant="acme", role="member")

    async def live_slot() -> None:
        lease = await limiter.acquire(identity, PLAN)
        assert lease is not None
        await limiter.release(identity, lease)

    return {
        f"{name}: rate-limit check (take)": await per_call_us(
            lambda: limiter.take(identity, PLAN), n
        ),
        f"{name}: live slot (acquire + release)": await per_call_us(live_slot, n // 2),
    }


async def main() -> None:
    results = await measure("in-process", MemoryLimiter(), 20_000)
    prefix = f"bench-limits-{secrets.token_hex(4)}"
    redis_limiter = RedisLimiter(connect_redis(REDIS_URL, "limits", replica="bench"), prefix)
    redis = redis_limiter.client.redis
    try:
        results |= await measure("Redis", redis_limiter, 2_000)
    finally:
        keys = [key async for key in redis.scan_iter(f"{prefix}:*")]
        if keys:
            await redis.delete(*keys)
        await redis_limiter.close()
    width = max(map(len, results))
    for name, us in results.items():
        print(f"{name:<{width}}  {us:8.1f} µs")


if __name__ == "__main__":
    asyncio.run(main())
