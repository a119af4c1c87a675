"""The one owner of the hot path's state: the decisions a live client repeats on every poll.

A client sends the same token, tenant header and shape definition on every long-poll; only its
position in the shape's log changes. What the gateway decides from them is kept here, in one
`BoundedCache` (gateway/cache.py): one bound in bytes (and entries), one eviction policy (least
recently used first), one metric (`shape_gateway_cache_bytes{cache="decisions"}`). Each entry's
key holds everything its decision depends on, so a hit is always the decision a miss would make:

- verified claims: the token's digest and the key set's generation; reused only while the key
  that verified them is trusted, and never past `exp` (checked on every hit);
- an identity: the token's digest, X-Tenant-Id and the rules' identity mapping;
- a plan's definition: the token's digest, X-Tenant-Id, the rules' digest and the shape
  definition (the query without its position). Rules without a digest are not kept;
- a checked client where or order-by: its text and everything the check reads (a where costs up
  to tens of ms to check, and many callers send the same one).

Refusals are never kept. Revocation is checked on every request, apart from this. A reload or a
key rotation keeps nothing stale: the new digest or generation is in every new key, and the old
entries are never found again (they age out).
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Mapping
from typing import Any, Final, NamedTuple

from gateway.auth.identity import Identity, resolve_identity
from gateway.auth.tokens import MAX_TOKEN_BYTES, TokenVerifier, token_digest
from gateway.cache import BoundedCache, text_size
from gateway.errors import Code, Refusal
from gateway.rules.model import IdentityMap, Rules
from gateway.shape.client_where import CheckedWhere, check_client_where, check_order_by
from gateway.shape.params import ShapeQuery
from gateway.shape.plan import Definition, UpstreamRequest, place, plan_definition

# About 3 KB a caller (a token, its identity, three shapes): some 10,000 callers, as the
# separate caches this one replaced held (10,000 tokens, identities and plans; 61 MiB in all).
MAX_ENTRIES: Final = 50_000
MAX_BYTES: Final = 32 * 1024 * 1024


class Caller(NamedTuple):
    """Who asks, as decisions are kept for them: never the token itself."""

    digest: bytes  # the token's (tokens.token_digest)
    tenant_header: str | None  # X-Tenant-Id, as sent


def definition_key(query: ShapeQuery) -> tuple[object, ...]:
    """Everything in a query but the client's position in the log: what a plan depends on."""
    subset = query.subset
    return (
        query.shape,
        query.columns,
        query.where,
        tuple(sorted(query.params.items())),
        query.replica,
        query.log,
        None
        if subset is None
        else (subset.where, tuple(sorted(subset.params.items())), subset.limit,
              subset.offset, subset.order_by),
    )  # fmt: skip


class Decisions:
    """Kept decisions, by what each depends on (see the module's docstring)."""

    def __init__(
        self, verifier: TokenVerifier, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES
    ) -> None:
        self.verifier = verifier
        self.cache: BoundedCache[Hashable, Any] = BoundedCache("decisions", max_entries, max_bytes)

    async def claims(self, token: str, now: float | None = None) -> tuple[bytes, dict[str, Any]]:
        """The token's digest and its verified claims. Raises Refusal."""
        now = time.time() if now is None else now
        if len(token) > MAX_TOKEN_BYTES:  # before hashing it
            raise Refusal(Code.INVALID_TOKEN, f"token is longer than {MAX_TOKEN_BYTES} bytes")
        digest = token_digest(token)
        key = ("token", digest, self.verifier.generation)
        entry = self.cache.get(key)
        if entry is not None:
            claims, expires, fingerprint = entry
            if not self.verifier.keys.trusts(fingerprint):
                self.cache.delete(key)
            elif now > expires + self.verifier.policy.leeway:
                self.cache.delete(key)
                raise Refusal(Code.TOKEN_EXPIRED, "token has expired; refresh it and retry")
            else:
                return digest, claims
        claims, verified_by = await self.verifier.verify_key(token, now)
        # The claims are the token's payload decoded: about its size again, as objects.
        self.cache.put(key, (claims, float(claims["exp"]), verified_by.fingerprint), 2 * len(token))
        return digest, claims

    def identity(self, caller: Caller, claims: Mapping[str, Any], mapping: IdentityMap) -> Identity:
        """The caller's identity from claims `claims(token)` verified. Raises Refusal."""
        key = ("identity", *caller, mapping)
        identity: Identity | None = self.cache.get(key)
        if identity is None:
            identity = resolve_identity(claims, mapping, caller.tenant_header)
            # The identity holds the token's string claims.
            self.cache.put(key, identity, text_size(claims) + len(caller.tenant_header or ""))
        return identity

    def plan(
        self, query: ShapeQuery, caller: Caller, identity: Identity, rules: Rules
    ) -> UpstreamRequest:
        """`plan_upstream_request` for `identity`, the identity of `caller` under `rules`."""
        if not rules.digest:  # nothing names these rules: nothing kept under them
            return place(plan_definition(query, identity, rules, self), query)
        key = ("plan", *caller, rules.digest, definition_key(query))
        definition: Definition | None = self.cache.get(key)
        if definition is None:
            definition = plan_definition(query, identity, rules, self)
            # The key holds the client's text, the definition what it became.
            self.cache.put(key, definition, text_size(key) + definition.size)
        return place(definition, query)

    def client_where(
        self,
        text: str,
        allowed: frozenset[str],
        shift: int,
        what: str,
        types: frozenset[tuple[str, str]],
    ) -> CheckedWhere:
        key = ("where", text, allowed, shift, what, types)
        checked: CheckedWhere | None = self.cache.get(key)
        if checked is None:
            checked = check_client_where(text, allowed, shift, what, types)
            self.cache.put(key, checked, len(text) + len(checked.sql))
        return checked

    def order_by(self, text: str, readable: frozenset[str] | None) -> str:
        key = ("order_by", text, readable)
        checked: str | None = self.cache.get(key)
        if checked is None:
            checked = check_order_by(text, readable)
            self.cache.put(key, checked, len(text) + len(checked))
        return checked
