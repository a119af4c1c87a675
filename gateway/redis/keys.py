"""Every Redis key the gateway uses, built in one place: unambiguous, and slot-safe on a Redis
Cluster.

A user id or an event id may contain `:`, the separator of our keys: joined raw, user `bob`
with event `1:x` and user `bob:1` with event `x` would share `...:bob:1:x`. Every part that
comes from a token or a client is encoded as unpadded base64url, whose alphabet has no `:`
(nor `{`/`}`), so distinct values always give distinct keys. Lone surrogates (valid in JSON
claims) survive through `surrogatepass`.

Redis Cluster runs a script or a multi-key command only when all its keys hash to one slot, and
hashes only the part of a key between the first `{` and `}` when there is one (the hash tag).
So the keys used together carry the same tag: the revocation stream with its epoch, origins
and event_id keys (`{revocations}`), the audit stream with its de-duplication index and the
users' ingestion budgets (`{audit}`), and a tenant's rate-limit buckets with its users'
(`{<tenant>}`). A user's live-slot set is used alone and counts the user's streams in every
tenant, so it is tagged by the user. Every key still starts with `<prefix>:`, so ACL key
patterns (`~shape-gateway:*`) and `SCAN` keep working.
"""

from __future__ import annotations

import base64
import hashlib


def key_part(value: str) -> str:
    """`value` as a key segment that cannot contain the separator or a brace."""
    raw = value.encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def tenant_key(prefix: str, kind: str, tenant: str, *values: str) -> str:
    """`<prefix>:<kind>:{<tenant>}:<part>...`: every key of one tenant shares its slot.
    (Tenants are never empty: the identity refuses a token without one.)"""
    return ":".join((prefix, kind, "{" + key_part(tenant) + "}", *(key_part(v) for v in values)))


def user_key(prefix: str, kind: str, user: str) -> str:
    """`<prefix>:<kind>:{<user>}`: a key of one user, whatever the tenant."""
    return f"{prefix}:{kind}:{{{key_part(user)}}}"


def revocation_stream(prefix: str) -> str:
    return f"{prefix}:{{revocations}}"


def revocation_epoch(prefix: str) -> str:
    """Set once per stream's life; gone with the stream when Redis loses its data."""
    return f"{prefix}:{{revocations}}:epoch"


def revocation_origins(prefix: str) -> str:
    """Original ids of events re-appended as copies, so two replicas never copy one twice."""
    return f"{prefix}:{{revocations}}:origins"


def revocation_event(prefix: str, event_id: str) -> str:
    """The stream id of the entry a publisher's event_id names, so publishing it again adds
    nothing (kept for the retention)."""
    return f"{prefix}:{{revocations}}:event:{key_part(event_id)}"


def audit_stream(prefix: str) -> str:
    return f"{prefix}:{{audit}}"


def audit_seen(prefix: str) -> str:
    """The client events' de-duplication index (a sorted set); in the audit stream's slot."""
    return f"{prefix}:{{audit}}:seen"


def audit_seen_member(tenant: str, user: str, event_id: str) -> str:
    """One client event's member of the index: a digest of its tenant, user and id, so every
    member has the same small size whatever the id (up to 128 characters) and the claims."""
    parts = ":".join(key_part(v) for v in (tenant, user, event_id))
    return hashlib.blake2b(parts.encode("ascii"), digest_size=16).hexdigest()


def audit_budget(prefix: str, user: str) -> str:
    """A user's audit-ingestion budget (bytes); in the audit stream's slot."""
    return ":".join((prefix, "{audit}", "budget", key_part(user)))


def security_stream(prefix: str) -> str:
    return f"{prefix}:security"
