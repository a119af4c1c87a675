"""Collapsing: one upstream exchange per distinct rewritten request in flight, fanned out to
every client that asked for it (GATEWAY_COLLAPSE, docs/performance.md).

The key is the request exactly as Electric would receive it (`encode_request`): upstream
address, path, every query pair after the rewrite in order (bound values, columns, handle,
offset, live, cursor, the upstream's secret), the request headers forwarded to Electric, and a
subset POST's body. It is never built from the incoming request: two clients share an exchange
only when Electric could not tell their requests apart, so neither can receive anything the
other's request would not have returned.

What joins, and how late:
- while the exchange is in flight, from before Electric's headers (every held long-poll) until
  its last byte; a late joiner is replayed the body received so far, kept up to RETAINED bytes
  (past that, the exchange takes no more joiners: a new request starts a new exchange);
- a finished snapshot (a non-live 200 Electric marks cacheable for shared caches: `offset=-1`
  and catch-up chunks) lingers LINGER_SECONDS for late joiners, within LINGER_BYTES for all
  lingering answers together. A live answer (long-poll, SSE) never lingers: a later request must
  see later data (Electric's cursor makes each live window a new URL for the same reason).

Per client: each joined client has a buffer of at most `client_buffer` bytes. The upstream is
read at the pace of the fastest client: on while it has less than PACE bytes waiting (a lone
client keeps the backpressure it had: a slow reader slows Electric's send, and
GATEWAY_WRITE_TIMEOUT cuts one that stopped); a client that is still `client_buffer` bytes
behind when the next chunk arrives is dropped (its response is cut,
`shape_gateway_slow_reader_drops_total`): it never stalls the others or the upstream read.
A client that leaves (gone, revoked, its token expired) leaves alone; the upstream request is
closed when its last client leaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

import structlog
from aiohttp import hdrs
from multidict import CIMultiDictProxy

from gateway.audit.records import upstream_reason
from gateway.errors import Code, Refusal
from gateway.metrics import Metrics
from gateway.shape.plan import UpstreamRequest
from gateway.upstream.client import Timeouts, UpstreamPool, encode_request, endpoint, send
from gateway.upstream.connection import HIGH_WATER, UpstreamBroken
from gateway.upstream.errors import (
    LOGGED_BYTES,
    refuse_unless_electric_answered,
    rejection_details,
)
from gateway.upstream.headers import client_headers

log = structlog.get_logger(__name__)

CLIENT_BUFFER: Final = 4 * 1024 * 1024  # bytes a joined client may lag the fastest one
PACE: Final = HIGH_WATER  # read on while the fastest client has less than this waiting
RETAINED: Final = 2 * 1024 * 1024  # body bytes kept for late joiners of one exchange
LINGER_SECONDS: Final = 5.0  # a finished snapshot stays joinable this long
LINGER_BYTES: Final = 64 * 1024 * 1024  # retained bytes of all lingering snapshots together
GONE: Final = Refusal(Code.UPSTREAM_UNAVAILABLE, "Electric's answer was abandoned; retry shortly")


class Dropped(Exception):  # noqa: N818 - a decision about the client, like Refusal
    """The client fell more than its buffer behind the fastest reader of its exchange."""


@dataclass(frozen=True, slots=True)
class Head:
    status: int
    headers: CIMultiDictProxy[str]
    # What of `headers` a client gets (client_headers), filtered once per exchange rather
    # than once per client: each response copies it (fan-out to thousands of held polls).
    passed: CIMultiDictProxy[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "passed", CIMultiDictProxy(client_headers(self.headers)))


def _shared_cacheable(headers: Mapping[str, str]) -> bool:
    """Electric marks an answer any shared cache may keep (`public` with a max-age)."""
    directives = {
        d.strip().lower().split("=", 1)[0] for d in headers.get(hdrs.CACHE_CONTROL, "").split(",")
    }
    return (
        "public" in directives
        and bool(directives & {"max-age", "s-maxage"})
        and not (directives & {"no-store", "no-cache", "private"})
    )


class Member:
    """One client's place in an exchange: its queue of chunks not yet written."""

    __slots__ = ("_chunks", "_waiter", "buffered", "dropped", "exchange", "joined", "on_drop")

    def __init__(self, exchange: Exchange, joined: bool) -> None:
        self.exchange = exchange
        self.joined = joined  # it found the exchange under way (another client started it)
        self._chunks: list[bytes] = list(exchange.retained or ())
        self.buffered = exchange.retained_bytes if exchange.retained else 0
        self._waiter: asyncio.Future[None] | None = None
        self.dropped = False
        # Cuts the client's connection: a client that fell behind is usually waiting for its
        # socket to drain, not for its next chunk.
        self.on_drop: Callable[[], None] | None = None

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def push(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self.buffered += len(chunk)
        self.wake()

    def drop(self) -> None:
        self.dropped = True
        self._chunks.clear()
        self.buffered = 0
        self.wake()
        if self.on_drop is not None:
            self.on_drop()

    def _check(self) -> None:
        if self.dropped:  # while its last chunk was being written
            raise Dropped

    async def head(self) -> Head:
        """Electric's status and headers; raises the exchange's refusal (a copy of its own)."""
        exchange = self.exchange
        while exchange.head is None and exchange.refusal is None:
            await self._wait()
        if exchange.head is None:
            refusal = exchange.refusal or GONE
            raise Refusal(refusal.code, refusal.message, refusal.retry_after)
        return exchange.head

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; UpstreamBroken or TimeoutError if Electric broke off,
        Dropped if this client fell too far behind."""
        exchange = self.exchange
        pace = PACE
        while True:
            while self._chunks:
                pending, self._chunks = self._chunks, []
                for chunk in pending:
                    self._check()
                    self.buffered -= len(chunk)
                    if self.buffered < pace:
                        exchange.room_made()
                    yield chunk
            self._check()
            if exchange.complete:
                return
            if exchange.failure is not None:
                raise exchange.failure
            await self._wait()

    def leave(self) -> None:
        """Done with the exchange (answered, gone, cut): the last to leave closes the upstream."""
        self.exchange.left(self)


class Exchange:
    """One upstream request and its answer, shared by its members."""

    def __init__(
        self, registry: Exchanges, key: bytes | None, planned: UpstreamRequest, method: str
    ) -> None:
        self.registry = registry
        self.key = key  # None: not shared (GATEWAY_COLLAPSE=off)
        self.planned = planned
        self.method = method
        self.members: set[Member] = set()
        self.head: Head | None = None
        self.refusal: Refusal | None = None
        self.failure: BaseException | None = None
        self.complete = False
        self.retained: list[bytes] | None = [] if key is not None else None
        self.retained_bytes = 0
        self.task: asyncio.Task[None] | None = None
        self._room: asyncio.Future[None] | None = None

    @property
    def ended(self) -> bool:
        return self.complete or self.failure is not None or self.refusal is not None

    def room_made(self) -> None:
        room = self._room
        if room is not None and not room.done():
            room.set_result(None)

    def left(self, member: Member) -> None:
        self.members.discard(member)
        if self.members:
            self.room_made()  # the one that left may have been all that was full
        elif not self.ended and self.task is not None:
            self.registry.forget(self)
            self.task.cancel()  # nobody wants the answer: the upstream request is closed

    def _wake_all(self) -> None:
        for member in self.members:
            member.wake()

    async def _wait_for_room(self) -> None:
        """Read on only when some member has less than PACE waiting: the pace of the fastest
        reader (a lone one holds no more here than the upstream connection would)."""
        while self.members and all(m.buffered >= PACE for m in self.members):
            self._room = asyncio.get_running_loop().create_future()
            try:
                await self._room
            finally:
                self._room = None

    def _deliver(self, chunk: bytes) -> None:
        limit = self.registry.client_buffer
        members = self.members
        # A member still a whole buffer behind when the next chunk comes would stall the rest:
        # dropped, but only when someone can take the chunk (none can: the read waits).
        droppable = any(m.buffered < limit for m in members)
        for member in list(members):
            if droppable and member.buffered >= limit:
                self.members.discard(member)
                member.drop()
                self.registry.metrics.slow_reader_drops.inc()
            else:
                member.push(chunk)
        if self.retained is not None:
            if self.retained_bytes + len(chunk) > self.registry.retained:
                self.retained = None  # too much to replay: later requests start anew
                self.retained_bytes = 0
                self.registry.forget(self)
            else:
                self.retained.append(chunk)
                self.retained_bytes += len(chunk)

    async def run(self, raw: bytes) -> None:
        registry, planned = self.registry, self.planned
        upstream = None
        try:
            try:
                upstream = await send(
                    registry.pool,
                    planned,
                    method=self.method,
                    headers={},
                    timeouts=registry.timeouts,
                    raw=raw,
                )
                await refuse_unless_electric_answered(upstream)
            except Refusal as refusal:
                upstream = None
                self.refusal = refusal
                return
            self.head = Head(upstream.status, upstream.headers)
            self._wake_all()
            rejected = upstream_reason(upstream.status) == "upstream_rejected"
            kept = bytearray()
            try:
                async for chunk in upstream.chunks():
                    if rejected and len(kept) < LOGGED_BYTES:
                        kept += chunk  # an error of Electric's: its start, for the log
                    self._deliver(chunk)
                    await self._wait_for_room()
            except (UpstreamBroken, TimeoutError) as error:
                log.warning("upstream_aborted_mid_body", reason=str(error))
                self.failure = error
                upstream.close()
                return
            self.complete = True
            upstream.release()
            if rejected:
                self._log_rejection(upstream.status, bytes(kept), upstream.headers)
            self._linger()
        except BaseException:
            if upstream is not None:
                upstream.close()  # never return a half-read connection to the pool
            raise
        finally:
            if self.head is None and self.refusal is None:
                self.refusal = GONE
            elif not self.ended:
                self.failure = UpstreamBroken("the upstream request was abandoned")
            if self.registry.lingering.get(self.key or b"") is not self:
                registry.forget(self)
            self._wake_all()

    def _linger(self) -> None:
        """A finished cacheable snapshot stays joinable a while; a live answer never does."""
        head, registry = self.head, self.registry
        if (
            self.key is None
            or self.retained is None
            or head is None
            or head.status != 200
            or self.method != hdrs.METH_GET
            or self.planned.live
            or not _shared_cacheable(head.headers)
            or registry.lingering_bytes + self.retained_bytes > LINGER_BYTES
            or registry.open.get(self.key) is not self
        ):
            return
        registry.lingering[self.key] = self
        registry.lingering_bytes += self.retained_bytes
        asyncio.get_running_loop().call_later(LINGER_SECONDS, registry.forget, self)

    def _log_rejection(self, status: int, kept: bytes, headers: CIMultiDictProxy[str]) -> None:
        """Electric rejected what the gateway asked (a 4xx passed through): the operator's to
        fix; logged once per exchange, however many clients it answered."""
        planned = self.planned
        log.warning(
            "upstream_rejected",
            upstream=planned.upstream.name,
            shape=planned.shape,
            table=planned.table,
            upstream_status=status,
            errors=rejection_details(kept, headers),
            check="that the rules' tables and columns exist: shape-gateway check --database URL",
        )


class Exchanges:
    """The exchanges in flight (and lingering), by key; owns their tasks."""

    def __init__(
        self,
        pool: UpstreamPool,
        timeouts: Timeouts,
        metrics: Metrics,
        *,
        collapse: bool = True,
        client_buffer: int = CLIENT_BUFFER,
        retained: int = RETAINED,
    ) -> None:
        self.pool, self.timeouts, self.metrics = pool, timeouts, metrics
        self.collapse = collapse
        self.client_buffer = max(client_buffer, 2 * PACE)
        self.retained = min(retained, self.client_buffer // 2)  # a replay fits a buffer
        self.open: dict[bytes, Exchange] = {}
        self.lingering: dict[bytes, Exchange] = {}
        self.lingering_bytes = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self.open)

    def join(
        self,
        planned: UpstreamRequest,
        method: str,
        headers: Mapping[str, str],
        body: bytes | None = None,
    ) -> Member:
        """This client's member of the exchange for its rewritten request: an exchange under
        way (or a lingering snapshot) with the very same request, else a new one."""
        raw = encode_request(planned, method, headers, body)
        metrics = self.metrics
        metrics.upstream_client_requests.inc()
        key = None
        if self.collapse:
            scheme, host, port = endpoint(planned.upstream.url).key
            key = f"{scheme}://{host}:{port}\n".encode() + raw
            exchange = self.open.get(key)
            if exchange is not None:
                member = Member(exchange, joined=True)
                if not exchange.ended:
                    exchange.members.add(member)
                metrics.upstream_joins.inc()
                return member
        exchange = Exchange(self, key, planned, method)
        member = Member(exchange, joined=False)
        exchange.members.add(member)
        if key is not None:
            self.open[key] = exchange
        metrics.upstream_requests.inc()
        task = asyncio.create_task(exchange.run(raw), name="upstream-exchange")  # noqa: TID251 - owned here
        exchange.task = task
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return member

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # a bug: its members got 502
            log.error("upstream_exchange_failed", exc_info=task.exception())

    def forget(self, exchange: Exchange) -> None:
        """No more joiners for `exchange` (ended, cancelled, or too long to replay)."""
        key = exchange.key
        if key is None:
            return
        if self.open.get(key) is exchange:
            del self.open[key]
        if self.lingering.get(key) is exchange:
            del self.lingering[key]
            self.lingering_bytes -= exchange.retained_bytes

    async def close(self) -> None:
        """Shutdown: every upstream request still open is closed."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        self.open.clear()
        self.lingering.clear()
        self.lingering_bytes = 0
