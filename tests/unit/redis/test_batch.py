"""Batches on a real redis-server of the test's own: concurrent commands share round trips
and a few connections, each caller gets its own answer or error, scripts Redis forgot are
loaded again, and a caller that leaves disturbs no one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.exceptions import RedisError, ResponseError

from gateway.redis.batch import Batches, Script
from gateway.redis.client import connect_redis
from tests.redis_servers import RedisProcess, RedisServers

pytestmark = [pytest.mark.redis]
ECHO = Script("return {KEYS[1], ARGV[1]}")


@pytest.fixture
async def server(redis_servers: RedisServers) -> RedisProcess:
    return redis_servers.single()


@pytest.fixture
async def batches(server: RedisProcess) -> AsyncIterator[Batches]:
    client = connect_redis(server.url, "test", replica="batch-test", connections=2,
                           decode_responses=True)  # fmt: skip
    batches = Batches(client, workers=2)
    yield batches
    await batches.close()
    await client.aclose()


def connections_named(server: RedisProcess, name: str) -> int:
    client = server.client()
    try:
        return sum(c["name"] == name for c in client.client_list())
    finally:
        client.close()


async def test_thousands_of_concurrent_commands_share_a_few_round_trips_and_connections(
    batches: Batches, server: RedisProcess
) -> None:
    await batches.script(ECHO, ["warm"], [0])  # Redis learns the script
    sent, commands = batches.sent, batches.commands
    calls = [batches.script(ECHO, [f"k{n}"], [n]) for n in range(3000)]
    answers = await asyncio.gather(*calls)
    assert answers == [[f"k{n}", str(n)] for n in range(3000)]
    assert batches.commands - commands == 3000
    assert batches.sent - sent <= 6  # 1,000 per batch at most, two workers
    assert connections_named(server, "shape-gateway:batch-test:test") <= 2


async def test_a_failing_command_fails_its_caller_only(batches: Batches) -> None:
    await batches.command("SET", "text", "not a list")
    results = await asyncio.gather(
        batches.command("LPUSH", "text", "x"), batches.command("GET", "text"),
        return_exceptions=True,
    )  # fmt: skip
    assert isinstance(results[0], ResponseError)
    assert results[1] == "not a list"


async def test_a_script_redis_forgot_is_loaded_again(
    batches: Batches, server: RedisProcess
) -> None:
    assert await batches.script(ECHO, ["a"], [1]) == ["a", "1"]
    client = server.client()
    client.script_flush()  # what a restart or a failover to a replica does to scripts
    client.close()
    assert await asyncio.gather(*(batches.script(ECHO, ["b"], [n]) for n in range(3))) == [
        ["b", "0"], ["b", "1"], ["b", "2"]
    ]  # fmt: skip


async def test_a_caller_that_leaves_disturbs_no_other(batches: Batches) -> None:
    leaving = asyncio.get_running_loop().create_task(batches.command("INCR", "counter"))
    staying = asyncio.gather(*(batches.command("INCR", "counter") for _ in range(5)))
    await asyncio.sleep(0)  # all six are queued
    leaving.cancel()
    answers = await staying
    assert len(set(answers)) == 5
    assert await batches.command("GET", "counter") in ("5", "6")  # sent with them, or skipped


async def test_an_unreachable_redis_fails_callers_and_the_workers_carry_on(
    batches: Batches, server: RedisProcess
) -> None:
    server.kill()
    with pytest.raises(RedisError):
        await batches.command("PING")
    server.start()
    assert await batches.command("PING") is True
