"""Commands issued at once go to Redis together: a few workers, each sending whatever has queued
as one pipeline, so a burst of requests costs a round trip per batch, not per request, and the
connections in use never exceed the workers, however many requests wait.

A worker wakes when the first command queues and takes everything queued by then (all the
commands issued in that event-loop tick), up to `BATCH_LIMIT`; while batches are in flight, new
commands queue and leave together with the next free worker. Scripts go as EVALSHA; one that
Redis does not know (a restart, a failover, a new Cluster node) is loaded and sent again. On a
Cluster the pipeline is split by node, one round trip to each. A caller that stops waiting
(its client went away) does not disturb the batch its command is in.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from redis.exceptions import NoScriptError, RedisError

from gateway.redis.client import RedisClient
from gateway.tasks import TaskGroup

BATCH_LIMIT: Final = 1000


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script, sent by its SHA1."""

    text: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.text.encode()).hexdigest())  # noqa: S324 - Redis names scripts by SHA1


@dataclass(frozen=True, slots=True)
class _Call:
    args: tuple[Any, ...]
    script: Script | None
    future: asyncio.Future[Any]


class Batches:
    def __init__(self, client: RedisClient, workers: int) -> None:
        self.client = client
        self.workers = workers
        self._queue: deque[_Call] = deque()
        self._ready = asyncio.Event()
        self._tasks: TaskGroup | None = None
        self.sent = 0  # batches sent (round trips), and the commands in them
        self.commands = 0
        self._busy = 0  # batches in flight
        self._idle = asyncio.Event()  # nothing queued, nothing in flight
        self._idle.set()

    async def script(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run `script` on `keys` with `args`; raises RedisError (or OSError) on failure."""
        return await self._submit(("EVALSHA", script.sha, len(keys), *keys, *args), script)

    def submit(
        self, script: Script, keys: Sequence[str], args: Sequence[Any]
    ) -> asyncio.Future[Any]:
        """`script` queued at once; the future holds its answer (or the error)."""
        return self._enqueue(("EVALSHA", script.sha, len(keys), *keys, *args), script)

    async def command(self, *args: Any) -> Any:
        return await self._submit(args, None)

    def enqueue(self, *args: Any) -> asyncio.Future[Any]:
        """Queue a command and return at once: for writes whose answer nobody waits for
        (the future holds it, or the error)."""
        return self._enqueue(args, None)

    def _enqueue(self, args: tuple[Any, ...], script: Script | None) -> asyncio.Future[Any]:
        if self._tasks is None:
            self._tasks = TaskGroup()
            for n in range(self.workers):
                self._tasks.spawn(self._work(), f"redis-batch-{self.client.name}-{n}")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(_Call(args, script, future))
        self._ready.set()
        self._idle.clear()
        return future

    async def _submit(self, args: tuple[Any, ...], script: Script | None) -> Any:
        return await self._enqueue(args, script)

    async def _work(self) -> None:
        while True:
            await self._ready.wait()
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), BATCH_LIMIT))]
            if not self._queue:
                self._ready.clear()
            batch = [call for call in batch if not call.future.done()]  # callers that left
            if batch:
                self._busy += 1
                try:
                    await self._send(batch)
                finally:
                    self._busy -= 1
            if not self._queue and not self._busy:
                self._idle.set()

    async def _send(self, batch: list[_Call]) -> None:
        try:
            results = await self._pipeline(batch)
            missing = [c for c, r in zip(batch, results, strict=True)
                       if isinstance(r, NoScriptError) and c.script is not None]  # fmt: skip
            if missing:
                for script in {c.script for c in missing if c.script is not None}:
                    await self.client.redis.script_load(script.text)
                retried = dict(zip(map(id, missing), await self._pipeline(missing), strict=True))
                results = [retried.get(id(c), r) for c, r in zip(batch, results, strict=True)]
        except asyncio.CancelledError:
            self._fail(batch, RedisError("the Redis client is closing"))
            raise
        except Exception as error:  # noqa: BLE001 - a failed batch fails its callers, never the worker
            failure = error if isinstance(error, RedisError | OSError) else RedisError(repr(error))
            results = [failure] * len(batch)
            self.client.report(failure)
        else:
            self.client.report(None)
        for call, result in zip(batch, results, strict=True):
            if call.future.done():
                continue
            if isinstance(result, BaseException):
                call.future.set_exception(result)
            else:
                call.future.set_result(result)

    async def _pipeline(self, batch: list[_Call]) -> list[Any]:
        self.sent += 1
        self.commands += len(batch)
        pipe = self.client.redis.pipeline(transaction=False)
        for call in batch:
            pipe.execute_command(*call.args)
        return list(await pipe.execute(raise_on_error=False))

    @staticmethod
    def _fail(calls: Sequence[_Call], error: Exception) -> None:
        for call in calls:
            if not call.future.done():
                call.future.set_exception(error)

    async def close(self, within: float = 1.0) -> None:
        """Send what is queued (the releases of streams ended at shutdown) for up to `within`
        seconds, then stop the workers; commands still queued fail as if Redis were away."""
        if self._tasks is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), within)
            await self._tasks.close()
        self._fail(self._queue, RedisError("the Redis client is closing"))
        self._queue.clear()
