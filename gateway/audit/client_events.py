"""POST /v1/audit-events: client audit events, attributed by the server, never by the client.

Each event is stamped with the token's user, tenant and role and the server's receive time;
one that claims another user or tenant is rejected (`attribution_mismatch`). Events are
de-duplicated by `id` per user across replicas and retries (a client that resends after a lost
answer creates no duplicate), then appended to a Redis stream with bounded retention, or,
without Redis, written to the audit log. The gateway's own security events (refusals of
authenticated callers) go to a separate bounded stream, `<prefix>:security`, so a flood of
refusals can never push client events out of theirs.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import structlog

from gateway.auth.identity import Identity
from gateway.errors import Code, Refusal
from gateway.redis_batch import Batches, Script
from gateway.redis_client import RedisClient
from gateway.redis_keys import audit_seen, audit_stream, security_stream

log = structlog.get_logger("gateway.audit")

MAX_EVENTS: Final = 500
MAX_ID: Final = 128
MAX_EVENT_BYTES: Final = 16 * 1024
DEDUPE_SECONDS: Final = 7 * 86400
STREAM_MAXLEN: Final = 1_000_000
SECURITY_MAXLEN: Final = 100_000
CLIENT_FIELDS: Final = frozenset(
    {"id", "action", "table", "recordId", "changes", "timestamp", "userId", "user", "tenantId",
     "tenant"}
)  # fmt: skip

# KEYS[1] stream, then one dedupe key per event (all in the stream's slot); ARGV[1] ttl s,
# ARGV[2] maxlen, then one JSON entry per event. Returns 1 (appended) or 0 (duplicate) per
# event, atomically.
APPEND: Final = Script("""
local out = {}
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'kind', 'client', 'event', ARGV[i + 1])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
""")


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
    if len(json.dumps(event)) > MAX_EVENT_BYTES:
        return Code.INVALID_PARAMETER, f"an event must be at most {MAX_EVENT_BYTES} bytes"
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
        """Append each (id, JSON) not seen before for this user; True where appended."""

    async def append_security(self, fields: Mapping[str, str]) -> None: ...

    async def close(self) -> None: ...


class LogSink:
    """No Redis: the audit log is the trail; duplicates are remembered in a bounded LRU."""

    def __init__(self, size: int = 100_000) -> None:
        self._seen: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._size = size

    async def append_client(self, identity: Identity, entries: list[tuple[str, str]]) -> list[bool]:
        out = []
        for event_id, entry in entries:
            key = (identity.tenant, identity.user, event_id)
            if key in self._seen:
                out.append(False)
                continue
            self._seen[key] = None
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
    """Both streams in Redis, through batches (see redis_batch): a burst of audit posts and
    security events shares the client's few connections."""

    def __init__(self, client: RedisClient, prefix: str) -> None:
        self.client = client
        self.batches = Batches(client, workers=client.connections)
        self.stream = audit_stream(prefix)
        self.security_stream = security_stream(prefix)
        self.prefix = prefix

    async def append_client(self, identity: Identity, entries: list[tuple[str, str]]) -> list[bool]:
        keys = [self.stream] + [
            audit_seen(self.prefix, identity.tenant, identity.user, event_id)
            for event_id, _ in entries
        ]
        result = await self.batches.script(
            APPEND, keys, [DEDUPE_SECONDS, STREAM_MAXLEN, *(e for _, e in entries)]
        )
        return [bool(flag) for flag in result]

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
        seen_in_batch.add(event_id)
        entries.append((event_id, json.dumps(stamp(event, identity, request_id))))
    if entries:
        appended = await sink.append_client(identity, entries)
        for (event_id, _), new in zip(entries, appended, strict=True):
            (outcome.accepted if new else outcome.duplicates).append(event_id)
    return outcome
