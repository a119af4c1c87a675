"""Client connections: how many may be open at once, and how long a slow one may take, to send
its request or to read its response.

Every open connection costs a file descriptor (two while it is proxied). Without a cap, a few
hundred kilobytes a second of attacker traffic (connections that send half a request line and
then nothing) exhaust the process's descriptors and with them the service. So:
- at most `max_connections` are open; a connection beyond that is closed the moment it is
  accepted (counted in `shape_gateway_connections_refused_total`, logged at most every 10 s);
- a connection must deliver a complete request's headers within the header timeout of being
  opened, and of its previous response (aiohttp's keep-alive timer, which closes a connection
  still waiting for a whole request); an idle keep-alive connection goes after the same time;
- a connection whose response makes no write progress for the write timeout (a client that
  stopped reading: the kernel's send buffer is full and ours is not draining) is aborted, which
  cancels its request and with it the upstream request (counted in
  `shape_gateway_write_timeouts_total`). Writing pauses as soon as anything waits in our buffer,
  so the timeout also covers the last bytes of an answer the handler finished writing, which a
  close would otherwise wait on forever. One loop timer per paused connection, none otherwise.
The default cap leaves room in the process's file limit for the upstream connections, and
`serve` first raises that limit's soft value to its hard one (as Go's runtime does): the common
soft default of 1,024 would otherwise cap a replica at 448 connections whatever ops allowed.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Callable
from typing import Final, cast

import structlog
from aiohttp import web

log = structlog.get_logger(__name__)
LOG_EVERY: Final = 10.0
RESERVED_DESCRIPTORS: Final = 128  # Redis, the listening socket, log files, the rules watcher


MOST_DESCRIPTORS: Final = 1 << 20  # Linux's default nr_open: a higher soft limit is refused


def raise_file_limit() -> int:
    """Raise the soft file limit to the hard one; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = MOST_DESCRIPTORS if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # a hard limit above what the kernel grants: keep ours
            pass
    return soft


def default_max_connections() -> int:
    """Half the descriptors left under the soft file limit: one per client, one upstream."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 10_000
    return max((soft - RESERVED_DESCRIPTORS) // 2, 16)


class ConnectionGuard:
    def __init__(
        self,
        max_connections: int,
        on_refused: Callable[[], None],
        write_timeout: float = 60.0,
        on_write_timeout: Callable[[], None] = lambda: None,
    ) -> None:
        self.max_connections = max_connections
        self.open = 0
        self.on_refused = on_refused
        self.write_timeout = write_timeout
        self.on_write_timeout = on_write_timeout
        self._refused_since_log = 0
        self._logged_at = float("-inf")
        self._stalled_since_log = 0
        self._stall_logged_at = float("-inf")

    def admit(self) -> bool:
        if self.open < self.max_connections:
            self.open += 1
            return True
        self.on_refused()
        self._refused_since_log += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY:
            log.warning(
                "connection_cap_reached",
                max_connections=self.max_connections,
                refused=self._refused_since_log,
                hint="raise GATEWAY_MAX_CONNECTIONS (and the file limit) or add replicas",
            )
            self._refused_since_log, self._logged_at = 0, now
        return False

    def release(self) -> None:
        self.open -= 1

    def stalled(self) -> None:
        """A connection's writes stalled for the write timeout: it is being aborted."""
        self.on_write_timeout()
        self._stalled_since_log += 1
        now = time.monotonic()
        if now - self._stall_logged_at >= LOG_EVERY:
            log.warning(
                "write_timeout",
                aborted=self._stalled_since_log,
                write_timeout=self.write_timeout,
                hint="clients that stopped reading their responses; GATEWAY_WRITE_TIMEOUT",
            )
            self._stalled_since_log, self._stall_logged_at = 0, now


class GuardedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind the guard's count and write timeout."""

    __slots__ = ("_admitted", "_guard", "_inner", "_stall", "_transport", "write_timed_out")

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionGuard) -> None:
        self._inner = inner
        self._guard = guard
        self._admitted = False
        self._transport: asyncio.Transport | None = None
        self._stall: asyncio.TimerHandle | None = None
        self.write_timed_out = False  # read by the audit line of the request it cut

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)
        if not self._guard.admit():
            stream.abort()
            return
        self._admitted = True
        self._transport = stream
        # Pause as soon as anything waits in our buffer (the kernel's is full): the default
        # high-water mark (64 KiB) would let a client that stopped reading keep up to that much
        # pending, never pausing, and a close then waits for it forever.
        stream.set_write_buffer_limits(high=0)
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._unstall()
        if self._admitted:
            self._admitted = False
            self._guard.release()
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._admitted:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    def pause_writing(self) -> None:
        self._inner.pause_writing()
        if self._admitted and self._stall is None:
            loop = asyncio.get_running_loop()
            self._stall = loop.call_later(self._guard.write_timeout, self._abort_stalled)

    def resume_writing(self) -> None:
        self._unstall()  # the client read: progress
        self._inner.resume_writing()

    def _unstall(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def _abort_stalled(self) -> None:
        """No write progress for the write timeout: abort (a close would wait for the client
        to read what is buffered). aiohttp then cancels the request's handler, which closes
        its upstream request."""
        self._stall = None
        if self._transport is None:
            return
        self.write_timed_out = True
        self._guard.stalled()
        self._transport.abort()


class GuardedSite(web.BaseSite):
    """A TCP site whose connections pass the guard; `reuse_port` lets several worker
    processes share one port."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        guard: ConnectionGuard,
        *,
        backlog: int,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self.runner = runner
        self.host, self.port, self.guard, self.reuse_port = host, port, guard, reuse_port

    @property
    def name(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        server = self.runner.server
        assert server is not None
        guard = self.guard
        self._server = await asyncio.get_running_loop().create_server(
            lambda: GuardedProtocol(server(), guard),
            self.host,
            self.port,
            backlog=self._backlog,
            reuse_address=True,
            reuse_port=self.reuse_port or None,
        )
