"""One way to make a Redis client, with a connection pool sized for bursts.

redis-py's default async pool refuses a 101st concurrent command with "Too many connections":
a burst of 1,000 clients reconnecting at once made limits fail open and writes fail
(bench/revocation). The pool's cap is raised well above any burst a replica serves. (Its
blocking variant, which queues instead, left app shutdown hanging now and then in tests.)
"""

from __future__ import annotations

from typing import Final

import redis.asyncio as aioredis

MAX_CONNECTIONS: Final = 4096


def make_redis(
    url: str, *, socket_timeout: float, decode_responses: bool = False
) -> aioredis.Redis:
    pool = aioredis.ConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        socket_timeout=socket_timeout,
        socket_connect_timeout=2,
        decode_responses=decode_responses,
    )
    return aioredis.Redis(connection_pool=pool)
