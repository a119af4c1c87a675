"""One way to make a Redis client: a bounded pool that queues instead of refusing.

Each replica holds three clients (revocation stream, limits, audit), each with at most
`GATEWAY_REDIS_POOL_SIZE` connections (default 32): about a hundred per replica whatever its
request concurrency, far under Redis's default `maxclients` of 10,000 even for dozens of
replicas. A command that finds every connection busy waits up to `POOL_WAIT` seconds for one
(then fails like an unreachable Redis: limits fail open, revocation freshness is judged by its
own follower). `close_redis` releases the pool's connections, not only the client.
"""

from __future__ import annotations

from typing import Final

import redis.asyncio as aioredis

DEFAULT_POOL_SIZE: Final = 32
POOL_WAIT: Final = 2.0


def make_redis(
    url: str,
    *,
    socket_timeout: float,
    decode_responses: bool = False,
    pool_size: int = DEFAULT_POOL_SIZE,
) -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=pool_size,
        timeout=POOL_WAIT,
        socket_timeout=socket_timeout,
        socket_connect_timeout=2,
        decode_responses=decode_responses,
    )
    # from_pool: the client owns the pool, so aclose() disconnects its connections too.
    return aioredis.Redis.from_pool(pool)
