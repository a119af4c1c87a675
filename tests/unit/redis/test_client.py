"""A job's Redis client: its connections named, bounded, and opened before the first burst."""

from __future__ import annotations

import uuid

import pytest
import redis

from gateway.redis.client import connect_redis

pytestmark = [pytest.mark.redis]


def named(url: str, name: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return sum(1 for c in client.client_list() if c["name"] == name)
    finally:
        client.close()


async def test_warming_opens_every_connection_of_the_job_before_any_request(
    redis_url: str,
) -> None:
    replica = uuid.uuid4().hex[:8]
    client = connect_redis(redis_url, "limits", replica=replica, connections=3)
    try:
        assert named(redis_url, client.name) == 0  # nothing is opened until used
        await client.warm()
        assert named(redis_url, client.name) == 3
        await client.warm()  # warming again opens nothing more: the bound holds
        assert named(redis_url, client.name) == 3
    finally:
        await client.aclose()
    assert named(redis_url, client.name) == 0


async def test_warming_a_redis_that_does_not_answer_fails_nothing() -> None:
    client = connect_redis("redis://127.0.0.1:1/0", "limits", replica="down", connections=2)
    try:
        await client.warm()  # failures are reported when the job uses Redis, not here
    finally:
        await client.aclose()
