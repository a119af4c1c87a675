"""POST /v1/audit-events: client audit events, attributed by the server, never by the client.

Each event is stamped with the token's user, tenant and role and the server's receive time;
one that claims another user or tenant is rejected (`attribution_mismatch`). Events are
de-duplicated by `id` per user across replicas and retries (a client that resends after a lost
answer creates no duplicate), then appended to a Redis stream with bounded retention, or,
without Redis, written to the audit log. The gateway's own security events (refusals of
authenticated callers) go to a separate bounded stream, `<prefix>:security`, so a flood of
refusals can never push client events out of theirs.

What a request stores is bounded on what is stored, not on what was received: each event as
stored (the server's stamp included) is at most `MAX_EVENT_BYTES` of JSON, and a batch at most
`MAX_BATCH_BYTES` as Redis holds it (`stored_cost`: the JSON plus a quarter, what the
allocator's rounding of stream nodes measured at most, plus `EVENT_OVERHEAD` for the entry's
framing and its member of the de-duplication index). Each user has a budget of such bytes a
minute (refilled continuously; shared through Redis, in memory without it): a batch it cannot
pay for is 429 `rate_limited` with `Retry-After`, and nothing of it is stored. Both streams
are capped by a byte budget: their MAXLEN is the budget over the cost of the largest entry,
and the de-duplication index holds as many members as the stream (none older than
`DEDUPE_SECONDS`).
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import structlog

from gateway.auth.identity import Identity
from gateway.errors import Code, Refusal, StoreUnavailableError
from gateway.redis.batch import Batches, Script
from gateway.redis.client import REDIS_ERRORS, RedisClient
from gateway.redis.keys import (
    audit_budget,
    audit_seen,
    audit_seen_member,
    audit_stream,
    security_stream,
)

log = structlog.get_logger("gateway.audit")

MAX_EVENTS: Final = 500
MAX_ID: Final = 128
MAX_EVENT_BYTES: Final = 8 * 1024  # one event's JSON as stored, the server's stamp included
EVENT_OVERHEAD: Final = 256  # its stream entry's framing and de-duplication member
MAX_BATCH_BYTES: Final = 512 * 1024  # one request, as Redis holds it (stored_cost)
DEDUPE_SECONDS: Final = 7 * 86400
STREAM_BYTES: Final = 1024 * 1024 * 1024
SECURITY_EVENT_BYTES: Final = 2048  # what security.bounded keeps an event to, about
SECURITY_STREAM_BYTES: Final = 256 * 1024 * 1024


def stored_cost(entry_bytes: int) -> int:
    """Bytes Redis holds for a stream entry of this size (measured with MEMORY USAGE: up to a
    quarter more for the allocator's rounding of stream nodes), with its fixed overhead."""
    return entry_bytes * 5 // 4 + EVENT_OVERHEAD


STREAM_MAXLEN: Final = STREAM_BYTES // stored_cost(MAX_EVENT_BYTES)  # 102,300
SECURITY_MAXLEN: Final = SECURITY_STREAM_BYTES // stored_cost(SECURITY_EVENT_BYTES)  # 95,325
CLIENT_FIELDS: Final = frozenset(
    {"id", "action", "table", "recordId", "changes", "timestamp", "userId", "user", "tenantId",
     "tenant"}
)  # fmt: skip

# KEYS[1] the stream, KEYS[2] the de-duplication index, KEYS[3] the user's budget (one slot).
# ARGV[1] dedupe ms, ARGV[2] maxlen, ARGV[3] budget bytes a minute, ARGV[4] per-event overhead,
# then (member, JSON entry) per event. The events not seen before are charged to the budget
# (their bytes plus the overhead each): when it cannot pay, nothing is stored and the answer is
# {seconds until it can}; else {0, then 1 (appended) or 0 (duplicate) per event}. Atomic.
APPEND: Final = Script("""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local maxlen, rate, overhead = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[1]))
local fresh, cost = {}, 0
for i = 5, #ARGV, 2 do
  local new = not redis.call('ZSCORE', KEYS[2], ARGV[i])
  fresh[#fresh + 1] = new
  if new then cost = cost + math.floor(#ARGV[i + 1] * 5 / 4) + overhead end
end
local b = redis.call('HMGET', KEYS[3], 'bytes', 'ts')
local elapsed = now - (tonumber(b[2]) or now)
local level = math.min(rate, (tonumber(b[1]) or rate) + elapsed * rate / 60000)
if cost > level then
  return {math.max(1, math.ceil((cost - level) * 60 / rate))}
end
redis.call('HSET', KEYS[3], 'bytes', tostring(level - cost), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[3], 120000) -- untouched for two minutes, it is full again anyway
local out = {0}
for n = 1, #fresh do
  if fresh[n] then
    redis.call('ZADD', KEYS[2], now, ARGV[3 + 2 * n])
    local entry = ARGV[4 + 2 * n]
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'kind', 'client', 'event', entry)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(maxlen + 1))
return out
""")


def budget_spent(retry_after: int, per_minute: int) -> Refusal:
    return Refusal(
        Code.RATE_LIMITED,
        f"your audit-event budget ({per_minute // 1024} KiB stored a minute) is spent; nothing "
        f"of this batch was stored; retry after {retry_after} s",
        retry_after,
    )


@dataclass
class Outcome:
    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}


def parse_batch(document: object) -> list[Mapping[str, Any]]:
    if not isinstance(document, list) or not all(isinstance(e, dict) for e in document):
        raise Refusal(Code.INVALID_PARAMETER, "the body must be a JSON array of event objects")
    if len(document) > MAX_EVENTS:
        raise Refusal(Code.INVALID_PARAMETER, f"send at most {MAX_EVENTS} events per request")
    return document


def stored_bytes(entries: list[tuple[str, str]]) -> int:
    """What a batch costs in storage (JSON entries are ASCII: their length is their size)."""
    return sum(stored_cost(len(entry)) for _, entry in entries)


def _problem(event: Mapping[str, Any], identity: Identity) -> tuple[Code, str] | None:
    for claimed, actual, names in (
        (identity.user, "user", ("userId", "user")),
        (identity.tenant, "tenant", ("tenantId", "tenant")),
    ):
        for name in names:
            if name in event and event[name] != claimed:
                return Code.ATTRIBUTION_MISMATCH, f"`{name}` names another {actual}; drop it"
    unknown = sorted(set(event) - CLIENT_FIELDS)
    if unknown:
        return Code.INVALID_PARAMETER, f"unknown field `{unknown[0][:64]}`"
    if not isinstance(event.get("action"), str) or not event["action"]:
        return Code.INVALID_PARAMETER, "`action` must be a non-empty string"
    if "table" in event and not isinstance(event["table"], str):
        return Code.INVALID_PARAMETER, "`table` must be a string"
    if "changes" in event and not isinstance(event["changes"], dict | type(None)):
        return Code.INVALID_PARAMETER, "`changes` must be an object"
    return None


def stamp(event: Mapping[str, Any], identity: Identity, request_id: str) -> dict[str, Any]:
    """The stored event: the client's fields, then the server's attribution over them."""
    kept = {k: v for k, v in event.items() if k not in ("userId", "user", "tenantId", "tenant")}
    return kept | {
        "user": identity.user,
        "tenant": identity.tenant,
        "role": identity.role,
        "received_at": round(time.time(), 3),
        "request_id": request_id,
    }


class AuditSink(Protocol):
    async def append_client(self, identity: Identity, entries: list[tuple[str, str]]) -> list[bool]:
        """Append each (id, JSON) not seen before for this user; True where appended. Raises
        Refusal rate_limited, storing nothing, when the user's budget cannot pay for them."""

    async def append_security(self, fields: Mapping[str, str]) -> None: ...

    async def close(self) -> None: ...


class LogSink:
    """No Redis: the audit log is the trail; duplicates are remembered in a bounded LRU, and
    each user's budget in a bounded table of buckets."""

    def __init__(self, bytes_per_minute: int, size: int = 100_000) -> None:
        self._seen: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._size = size
        self.bytes_per_minute = bytes_per_minute
        self._budgets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # bytes left, at

    def _charge(self, user: str, cost: int) -> None:
        now, rate = time.monotonic(), self.bytes_per_minute
        left, at = self._budgets.get(user, (float(rate), now))
        level = min(float(rate), left + (now - at) * rate / 60)
        if cost > level:
            raise budget_spent(max(1, math.ceil((cost - level) * 60 / rate)), rate)
        self._budgets[user] = (level - cost, now)
        self._budgets.move_to_end(user)
        if len(self._budgets) > self._size:
            self._budgets.popitem(last=False)

    async def append_client(self, identity: Identity, entries: list[tuple[str, str]]) -> list[bool]:
        def key(event_id: str) -> tuple[str, str, str]:
            return identity.tenant, identity.user, event_id

        self._charge(
            identity.user, stored_bytes([e for e in entries if key(e[0]) not in self._seen])
        )
        out = []
        for event_id, entry in entries:
            if key(event_id) in self._seen:
                out.append(False)
                continue
            self._seen[key(event_id)] = None
            if len(self._seen) > self._size:
                self._seen.popitem(last=False)
            log.info("client_audit_event", audit_event=json.loads(entry))
            out.append(True)
        return out

    async def append_security(self, fields: Mapping[str, str]) -> None:
        return None  # the request's audit line already records the refusal

    async def close(self) -> None:
        return None


class RedisSink:
    """Both streams in Redis, through batches (see redis/batch.py): a burst of audit posts and
    security events shares the client's few connections."""

    def __init__(
        self, client: RedisClient, prefix: str, bytes_per_minute: int, maxlen: int = STREAM_MAXLEN
    ) -> None:
        self.client = client
        self.maxlen = maxlen
        self.batches = Batches(client, workers=client.connections)
        self.stream = audit_stream(prefix)
        self.seen = audit_seen(prefix)
        self.security_stream = security_stream(prefix)
        self.prefix = prefix
        self.bytes_per_minute = bytes_per_minute

    async def append_client(self, identity: Identity, entries: list[tuple[str, str]]) -> list[bool]:
        keys = [self.stream, self.seen, audit_budget(self.prefix, identity.user)]
        args: list[str | int] = [
            DEDUPE_SECONDS * 1000, self.maxlen, self.bytes_per_minute, EVENT_OVERHEAD
        ]  # fmt: skip
        for event_id, entry in entries:
            args += [audit_seen_member(identity.tenant, identity.user, event_id), entry]
        try:
            retry, *flags = await self.batches.script(APPEND, keys, args)
        except REDIS_ERRORS as error:
            raise StoreUnavailableError(str(error)) from error
        if int(retry):
            raise budget_spent(int(retry), self.bytes_per_minute)
        return [bool(int(flag)) for flag in flags]

    async def append_security(self, fields: Mapping[str, str]) -> None:
        pairs = [part for item in {"kind": "security", **fields}.items() for part in item]
        await self.batches.command(
            "XADD", self.security_stream, "MAXLEN", "~", SECURITY_MAXLEN, "*", *pairs
        )

    async def close(self) -> None:
        await self.batches.close()
        await self.client.aclose()


async def record_batch(
    sink: AuditSink, identity: Identity, events: list[Mapping[str, Any]], request_id: str
) -> Outcome:
    outcome = Outcome()
    entries: list[tuple[str, str]] = []
    seen_in_batch: set[str] = set()
    for event in events:
        event_id = event.get("id")
        if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_ID:
            message = f"`id` must be a string of 1-{MAX_ID} characters"
            outcome.rejected.append(
                {"id": str(event_id)[:MAX_ID], "error": Code.INVALID_PARAMETER.value,
                 "message": message}
            )  # fmt: skip
            continue
        problem = _problem(event, identity)
        if problem is not None:
            outcome.rejected.append(
                {"id": event_id, "error": problem[0].value, "message": problem[1]}
            )
            continue
        if event_id in seen_in_batch:
            outcome.duplicates.append(event_id)
            continue
        entry = json.dumps(stamp(event, identity, request_id))  # ASCII: its length is its size
        if len(entry) > MAX_EVENT_BYTES:
            message = (
                f"an event must be at most {MAX_EVENT_BYTES} bytes as stored; this is {len(entry)}"
            )
            outcome.rejected.append(
                {"id": event_id, "error": Code.INVALID_PARAMETER.value, "message": message}
            )
            continue
        seen_in_batch.add(event_id)
        entries.append((event_id, entry))
    if stored_bytes(entries) > MAX_BATCH_BYTES:
        raise Refusal(
            Code.INVALID_PARAMETER,
            f"this batch would store {stored_bytes(entries)} bytes, more than the "
            f"{MAX_BATCH_BYTES} a request may (each event counts its JSON and a quarter, plus "
            f"{EVENT_OVERHEAD}); send it in smaller batches",
        )
    if entries:
        appended = await sink.append_client(identity, entries)
        for (event_id, _), new in zip(entries, appended, strict=True):
            (outcome.accepted if new else outcome.duplicates).append(event_id)
    return outcome
