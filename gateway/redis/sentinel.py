"""Which server is the Redis master: the one a majority of the sentinels names.

A master that stops answering for a few seconds (a long pause, a partition) and comes back still
calls itself master until Sentinel demotes it, about ten seconds later. A client that asks the
server (ROLE), or a single sentinel that has not yet heard of the failover, goes on reading
from and writing to the deposed master while everyone else uses the promoted one. So the
gateway asks every sentinel in REDIS_URL and follows only the address more than half of them
name: the failover is decided by such a majority, so as soon as it is, the gateway leaves the
old master; and a gateway cut off from most sentinels confirms nothing.

One connection per sentinel, asked one question at a time: a sentinel still answering an
earlier question is not asked again, so a paused sentinel ties up its connection and delays
nothing while the others answer. Questions asked at once share one round of answers.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Final

import redis.asyncio as aioredis
from redis.asyncio.sentinel import MasterNotFoundError

from gateway.tasks import TaskGroup

# How long a sentinel may take to answer (it answers from memory, in microseconds).
SENTINEL_TIMEOUT: Final = 1.0
Address = tuple[str, int]
REDIS_ERRORS_OF_A_SENTINEL: Final = (aioredis.RedisError, OSError)


class MasterUnconfirmedError(MasterNotFoundError):
    """No majority of the sentinels named one master (a ConnectionError, as redis-py's own)."""


class SentinelQuorum:
    """The sentinels of one REDIS_URL, asked which server is `service`'s master. Also redis-py's
    `sentinel_manager` for a SentinelConnectionPool (`discover_master`)."""

    def __init__(
        self,
        hosts: Sequence[Address],
        service: str,
        connect: Callable[[str, int], aioredis.Redis],
    ) -> None:
        self.service = service
        self.hosts = list(hosts)
        self._clients = [connect(host, port) for host, port in hosts]
        # Per sentinel, the question in flight or last asked: (when, its answer).
        self._questions: list[tuple[float, asyncio.Task[Address | None]] | None]
        self._questions = [None] * len(hosts)
        self._round: tuple[float, asyncio.Task[Address | None]] | None = None
        self._tasks = TaskGroup()

    @property
    def majority(self) -> int:
        return len(self._clients) // 2 + 1

    async def master(self, since: float | None = None) -> Address:
        """The address a majority of the sentinels name as master; with `since`
        (time.monotonic()), only answers to questions asked at or after it count. Raises
        MasterUnconfirmedError."""
        current = self._round
        if current is None or current[1].done() or (since is not None and current[0] < since):
            started = time.monotonic()
            fresh_after = None if since is None else started
            current = (started, self._tasks.spawn(self._ask_all(fresh_after), "sentinel-round"))
            self._round = current
        named = await asyncio.shield(current[1])
        if named is None:
            raise MasterUnconfirmedError(
                f"no majority ({self.majority} of {len(self._clients)}) of the sentinels "
                f"named a master for {self.service!r}: check that they run and can be reached"
            )
        return named

    async def discover_master(self, service_name: str) -> Address:
        """For redis-py's SentinelConnectionPool: where a new connection goes."""
        return await self.master()

    async def _ask_all(self, since: float | None) -> Address | None:
        """The address that first gets a majority of the answers, else None."""
        answers = [self._tasks.spawn(self._answer(n, since), f"sentinel-{n}-answer")
                   for n in range(len(self._clients))]  # fmt: skip
        votes: Counter[Address] = Counter()
        waiting = set(answers)
        while waiting:
            done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                named: Address | None = task.result()
                if named is not None:
                    votes[named] += 1
                    if votes[named] >= self.majority:
                        return named
        return None

    async def _answer(self, n: int, since: float | None) -> Address | None:
        """Sentinel `n`'s answer: to the question in flight if it was asked late enough,
        else to a new one (asked once the one in flight is answered: one at a time)."""
        while True:
            question = self._questions[n]
            if question is not None and not question[1].done():
                asked_at, pending = question
                if since is None or asked_at >= since:
                    return await asyncio.shield(pending)
                await asyncio.wait({pending})
                continue
            asked = self._tasks.spawn(self._ask(self._clients[n]), f"sentinel-{n}")
            self._questions[n] = (time.monotonic(), asked)
            return await asyncio.shield(asked)

    async def _ask(self, client: aioredis.Redis) -> Address | None:
        try:
            reply = await client.sentinel_get_master_addr_by_name(
                self.service, return_responses=True
            )
        except REDIS_ERRORS_OF_A_SENTINEL:
            return None  # unreachable, or not a sentinel: no vote
        if not isinstance(reply, tuple | list) or len(reply) != 2:
            return None  # it does not monitor that name
        return str(reply[0]), int(reply[1])

    async def aclose(self) -> None:
        await self._tasks.close(within=1.0)
        for client in self._clients:
            await client.aclose()
