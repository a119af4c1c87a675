"""Which server is master: what a majority of the sentinels names, with one connection to each
sentinel, asked one question at a time. Real sentinels (tests/redis_servers.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.redis.client import sentinel_quorum
from gateway.redis.sentinel import SENTINEL_TIMEOUT, MasterUnconfirmedError
from gateway.redis.url import parse_redis_url
from tests.redis_servers import RedisServers

pytestmark = [pytest.mark.redis]


async def test_a_majority_of_the_sentinels_names_the_master_and_a_minority_cannot(
    redis_servers: RedisServers,
) -> None:
    group = redis_servers.replicated()
    sentinels = sentinel_quorum(parse_redis_url(group.url), "quorum-test")
    master = ("127.0.0.1", group.master.port)
    try:
        answers = await asyncio.gather(*(sentinels.master() for _ in range(20)))
        assert set(answers) == {master}
        # One connection each, however many asked at once; the slowest sentinel's may still be
        # connecting when a majority has answered.
        connections = []
        for sentinel in group.sentinels:
            client = sentinel.client()
            names = [c["name"] for c in client.client_list()]
            client.close()
            connections.append(names.count("quorum-test:sentinel"))
        assert max(connections) == 1
        assert sum(connections) >= sentinels.majority

        group.sentinels[0].pause()  # a paused sentinel delays nothing: two agree
        started = time.monotonic()
        assert await sentinels.master(since=time.monotonic()) == master
        assert time.monotonic() - started < SENTINEL_TIMEOUT / 2

        group.sentinels[1].pause()  # one of three cannot confirm anything
        started = time.monotonic()
        with pytest.raises(MasterUnconfirmedError, match="no majority"):
            await sentinels.master(since=time.monotonic())
        assert time.monotonic() - started < 2 * SENTINEL_TIMEOUT + 1
        for sentinel in group.sentinels:
            sentinel.resume()
        assert await sentinels.master(since=time.monotonic()) == master
    finally:
        for sentinel in group.sentinels:
            sentinel.resume()
        await sentinels.aclose()  # a failed assertion must not leak its connections
