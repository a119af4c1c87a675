"""Per-user and per-tenant request budgets, and per-user caps on live connections (counted
over all of the user's tenants: a user with N memberships gets the cap once), shared by
every replica through Redis (one atomic script call each, sent in batches: see redis/batch.py),
in-process without Redis.

Budgets are token buckets refilled continuously at the plan's per-minute rate, using Redis's
clock so replicas with skewed clocks agree. Live slots are leases that expire: a held
long-poll or SSE stream renews its slot while it lasts, so a replica that dies leaks its slots
for at most one lease. If Redis cannot be reached, limits fail open (logged): revocation, not
rate limiting, is what keeps data safe, and it has its own fail mode.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import structlog
from redis.exceptions import RedisError

from gateway.auth.identity import Identity
from gateway.errors import Code, Refusal
from gateway.redis.batch import Batches, Script
from gateway.redis.client import RedisClient
from gateway.redis.keys import tenant_key, user_key
from gateway.rules.model import LimitPlan

log = structlog.get_logger(__name__)

LEASE_SECONDS: Final = 15.0
RENEW_SECONDS: Final = 5.0
BUCKET_TTL_MS: Final = 120_000

# The requests of one tenant in one event-loop tick, a token-bucket check each. KEYS: (user
# bucket, tenant bucket) pairs, all with the tenant's hash tag (one slot); ARGV: ttl ms, then
# (user rate, tenant rate) per pair. Taken in order, so two requests of one user share their
# bucket correctly. Returns {allowed, retry-after, which} per pair, flattened.
TAKE_MANY: Final = Script("""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function level(key, rate)
  local b = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(b[1]) or rate
  local ts = tonumber(b[2]) or now
  return math.min(rate, tokens + (now - ts) * rate / 60000)
end
local out = {}
for i = 1, #KEYS, 2 do
  local ur, tr = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local u, tn = level(KEYS[i], ur), level(KEYS[i + 1], tr)
  if u < 1 or tn < 1 then
    local wait, which = 0, 2
    if u < 1 then wait = (1 - u) * 60 / ur; which = 1 end
    if tn < 1 then wait = math.max(wait, (1 - tn) * 60 / tr) end
    out[#out + 1] = 0; out[#out + 1] = math.ceil(wait); out[#out + 1] = which
  else
    redis.call('HSET', KEYS[i], 'tokens', tostring(u - 1), 'ts', tostring(now))
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
    redis.call('HSET', KEYS[i + 1], 'tokens', tostring(tn - 1), 'ts', tostring(now))
    redis.call('PEXPIRE', KEYS[i + 1], ARGV[1])
    out[#out + 1] = 1; out[#out + 1] = 0; out[#out + 1] = 0
  end
end
return out
""")
# KEYS: the user's lease set (all its tenants). ARGV: lease id, cap, lease ms. Returns 1 if a
# slot was taken.
ACQUIRE: Final = Script("""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
""")
# KEYS: one user's lease set. ARGV: lease ms, then the lease ids this replica holds in it.
RENEW: Final = Script("""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return #ARGV - 1
""")


LIVE_RETRY_AFTER: Final = 5


def rate_limited(retry_after: int, tenant_wide: bool) -> Refusal:
    scope = "your tenant's" if tenant_wide else "your"
    return Refusal(
        Code.RATE_LIMITED,
        f"{scope} request budget is spent; retry after {retry_after} s",
        retry_after,
    )


def too_many_live(cap: int) -> Refusal:
    return Refusal(
        Code.TOO_MANY_LIVE_CONNECTIONS,
        f"at most {cap} live connections per user; close one or retry later",
        LIVE_RETRY_AFTER,
    )


@dataclass(frozen=True, slots=True)
class Decision:
    refusal: Refusal | None = None
    retry_after: int = 0


class Limiter(Protocol):
    async def take(self, identity: Identity, plan: LimitPlan) -> Decision: ...

    async def acquire(self, identity: Identity, plan: LimitPlan) -> str | None:
        """A lease id, or None when the user's live connections are at the cap."""

    async def release(self, identity: Identity, lease: str) -> None: ...

    async def run(self) -> None: ...

    async def close(self) -> None: ...


_Take = tuple[Identity, LimitPlan, "asyncio.Future[tuple[int, int, int]]"]


def _answer_takes(done: asyncio.Future[Any], waiting: list[_Take]) -> None:
    """Hand each request of a batched TAKE its {allowed, retry-after, which}."""
    error = done.exception() if not done.cancelled() else RedisError("cancelled")
    answers = [] if error is not None else list(done.result())
    for n, (_, _, future) in enumerate(waiting):
        if future.done():
            continue  # its client went away
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(tuple(int(v) for v in answers[3 * n : 3 * n + 3]))  # type: ignore[arg-type]


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class MemoryLimiter:
    """One process: the same buckets and caps, in dicts."""

    buckets: dict[tuple[str, ...], _Bucket] = field(default_factory=dict)
    live: dict[str, set[str]] = field(default_factory=dict)  # user -> leases, any tenant

    def _level(self, key: tuple[str, ...], rate: int, now: float) -> _Bucket:
        bucket = self.buckets.setdefault(key, _Bucket(rate, now))
        bucket.tokens = min(rate, bucket.tokens + (now - bucket.at) * rate / 60)
        bucket.at = now
        return bucket

    async def take(self, identity: Identity, plan: LimitPlan) -> Decision:
        now = time.monotonic()
        user = self._level(("u", identity.tenant, identity.user), plan.requests_per_minute, now)
        tenant = self._level(("t", identity.tenant), plan.tenant_requests_per_minute, now)
        if user.tokens < 1 or tenant.tokens < 1:
            wait = 0.0
            if user.tokens < 1:
                wait = (1 - user.tokens) * 60 / plan.requests_per_minute
            if tenant.tokens < 1:
                wait = max(wait, (1 - tenant.tokens) * 60 / plan.tenant_requests_per_minute)
            retry = max(math.ceil(wait), 1)
            return Decision(rate_limited(retry, user.tokens >= 1), retry)
        user.tokens -= 1
        tenant.tokens -= 1
        return Decision()

    async def acquire(self, identity: Identity, plan: LimitPlan) -> str | None:
        held = self.live.setdefault(identity.user, set())
        if len(held) >= plan.live_connections_per_user:
            return None
        lease = secrets.token_hex(8)
        held.add(lease)
        return lease

    async def release(self, identity: Identity, lease: str) -> None:
        held = self.live.get(identity.user)
        if held is not None:
            held.discard(lease)
            if not held:
                del self.live[identity.user]

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def close(self) -> None:
        return None


def _report_release(done: asyncio.Future[object]) -> None:
    if not done.cancelled() and (error := done.exception()) is not None:
        log.warning("live_release_failed", reason=str(error))  # the lease expires anyway


class RedisLimiter:
    """The budgets and caps in Redis. Every check is one script call, queued into the batch
    the client's next free worker sends, so thousands of concurrent requests share a few
    connections and a round trip per batch."""

    def __init__(
        self, client: RedisClient, prefix: str, lease_seconds: float = LEASE_SECONDS
    ) -> None:
        self.client = client
        self.batches = Batches(client, workers=client.connections)
        self.prefix = prefix
        self.lease_ms = int(lease_seconds * 1000)
        self.renew_every = lease_seconds / 3
        self._leases: dict[str, str] = {}  # lease id -> its key, renewed while held
        self._takes: dict[str, list[_Take]] = {}  # this tick's requests, by tenant
        self._flush_scheduled = False

    def _live_key(self, identity: Identity) -> str:
        """The user's lease set: one for all of the user's tenants."""
        return user_key(self.prefix, "live", identity.user)

    def _flush_takes(self) -> None:
        self._flush_scheduled = False
        takes, self._takes = self._takes, {}
        for tenant, pending in takes.items():
            keys: list[str] = []
            args: list[int] = [BUCKET_TTL_MS]
            tenant_bucket = tenant_key(self.prefix, "rl:t", tenant)
            for identity, plan, _ in pending:
                keys += [tenant_key(self.prefix, "rl:u", tenant, identity.user), tenant_bucket]
                args += [plan.requests_per_minute, plan.tenant_requests_per_minute]
            self.batches.submit(TAKE_MANY, keys, args).add_done_callback(
                lambda done, waiting=pending: _answer_takes(done, waiting)  # type: ignore[misc]
            )

    async def take(self, identity: Identity, plan: LimitPlan) -> Decision:
        """Charge one request. The requests of a tenant in one event-loop tick go as one
        script call: one command for Redis to parse and run, not one per request."""
        future: asyncio.Future[tuple[int, int, int]] = asyncio.get_running_loop().create_future()
        pending = self._takes.setdefault(identity.tenant, [])
        pending.append((identity, plan, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_takes)
        try:
            allowed, retry, which = await future
        except (RedisError, OSError) as error:
            log.warning("rate_limit_unavailable", reason=str(error))
            return Decision()
        if allowed:
            return Decision()
        retry = max(int(retry), 1)
        return Decision(rate_limited(retry, int(which) == 2), retry)

    async def acquire(self, identity: Identity, plan: LimitPlan) -> str | None:
        lease, key = secrets.token_hex(8), self._live_key(identity)
        try:
            ok = await self.batches.script(
                ACQUIRE, [key], [lease, plan.live_connections_per_user, self.lease_ms]
            )
        except (RedisError, OSError) as error:
            log.warning("live_cap_unavailable", reason=str(error))
            return lease
        if not ok:
            return None
        self._leases[lease] = key
        return lease

    async def release(self, identity: Identity, lease: str) -> None:
        """Queued, never awaited: a request's end must not wait on Redis (a stream cut by a
        revocation answers at once). If it fails, the lease expires anyway."""
        key = self._leases.pop(lease, None)
        if key is not None:
            self.batches.enqueue("ZREM", key, lease).add_done_callback(_report_release)

    async def renew(self) -> None:
        """Renew every held lease: one script call per lease set, all in as few batches."""
        by_key: dict[str, list[str]] = {}
        for lease, key in self._leases.items():
            by_key.setdefault(key, []).append(lease)
        calls = [self.batches.script(RENEW, [key], [self.lease_ms, *leases])
                 for key, leases in by_key.items()]  # fmt: skip
        failures = [r for r in await asyncio.gather(*calls, return_exceptions=True)
                    if isinstance(r, BaseException)]  # fmt: skip
        if failures:
            log.warning("live_renew_failed", reason=str(failures[0]), failed=len(failures))

    async def run(self) -> None:
        """Renew every held lease a few times per lease."""
        while True:
            await asyncio.sleep(self.renew_every)
            await self.renew()

    async def close(self) -> None:
        await self.batches.close()
        await self.client.aclose()
