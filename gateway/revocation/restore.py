"""Putting back the events a Redis lost, from what a replica holds.

Redis replicates asynchronously, and may keep nothing on disk. Two ways to lose entries:
- it restarts empty (the epoch key is gone with the stream);
- a replica that had not received the last entries is promoted after a failover, or a restart
  reloads a snapshot a few writes old: the stream's last generated id is now below the last id
  a gateway applied.
Every gateway replica that notices either hands the events it holds (the retained window, in
id order) to one atomic script, which re-appends each one the stream lacks:
- with its original id when that id is above the stream's top (the stream is then exactly as it
  was, and a gateway that already applied it never even reads it again);
- else as a copy (`origin` = the original id, `at` = its time), once: the origins set remembers
  copies, so two gateways restoring at once never copy an event twice.
An event whose publisher's event_id the stream already holds (it was published again, on this
Redis, after its first publish's outcome was unknown) is not put back, and one put back gets
its event_id key, so a later publish of it adds nothing. Gateways apply by original id and by
event_id, so nothing is applied twice either way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

import redis.asyncio as aioredis

from gateway.redis.keys import revocation_event, revocation_origins, revocation_stream
from gateway.revocation.events import EventRequest, RevocationEvent

CHUNK: Final = 200  # events per script call: each call blocks Redis for well under a ms

# KEYS: the stream, the origins set, then the event_id key of each event that has one (one
# slot). ARGV: ttl ms, then per event: its id, its time (s), its fields as a JSON object (with
# its event_id, if any). Returns {appended with their id, appended as copies}.
RESTORE: Final = """
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function above(a, b)
  local ams, aseq = parse(a)
  local bms, bseq = parse(b)
  return ams > bms or (ams == bms and aseq > bseq)
end
local top = '0-0'
local info = redis.pcall('XINFO', 'STREAM', KEYS[1])
if type(info) == 'table' and not info.err then
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then top = info[i + 1] end
  end
end
local restored, copied, named = 0, 0, 2
for i = 2, #ARGV, 3 do
  local id, at = ARGV[i], ARGV[i + 1]
  local fields, event_key = {}, nil
  for name, value in pairs(cjson.decode(ARGV[i + 2])) do
    fields[#fields + 1] = name
    fields[#fields + 1] = value
    if name == 'event_id' then
      named = named + 1
      event_key = KEYS[named]
    end
  end
  fields[#fields + 1] = 'at'
  fields[#fields + 1] = at
  local added = nil
  if event_key and redis.call('EXISTS', event_key) == 1 then
    added = nil  -- published again since: the stream has it under another id
  elseif above(id, top) then
    added = redis.call('XADD', KEYS[1], id, unpack(fields))
    top = id
    restored = restored + 1
  elseif #redis.call('XRANGE', KEYS[1], id, id) == 0
      and redis.call('SADD', KEYS[2], id) == 1 then
    fields[#fields + 1] = 'origin'
    fields[#fields + 1] = id
    added = redis.call('XADD', KEYS[1], '*', unpack(fields))
    copied = copied + 1
  end
  if added and event_key then
    redis.call('SET', event_key, added, 'PX', ARGV[1])
  end
end
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return {restored, copied}
"""


def _arguments(event: RevocationEvent) -> list[str]:
    fields = EventRequest(
        event.type, event.user, event.tenant, event.role, event.session, event.event_id
    )
    return [event.id, str(event.at), json.dumps(fields.fields())]


async def restore_events(
    redis: aioredis.Redis, prefix: str, events: Iterable[RevocationEvent], ttl_ms: int
) -> tuple[int, int]:
    """Re-append what the stream lacks of `events` (in id order), on `redis`, the node holding
    the stream; returns (restored with their own id, appended as copies). Raises RedisError."""
    script = redis.register_script(RESTORE)
    stream, origins = revocation_stream(prefix), revocation_origins(prefix)
    ordered = list(events)
    restored = copied = 0
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        keys = [stream, origins]
        keys += [revocation_event(prefix, e.event_id) for e in chunk if e.event_id is not None]
        args: list[Any] = [ttl_ms]
        for event in chunk:
            args += _arguments(event)
        done = await script(keys=keys, args=args)
        restored, copied = restored + int(done[0]), copied + int(done[1])
    return restored, copied
