"""Redis keys: distinct values never share a key, every key starts with the prefix (ACL
patterns), and the keys one script or command uses together hash to one Cluster slot."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from gateway.redis import keys
from gateway.redis.keys import key_part

PREFIX = "shape-gateway"


def slot(key: str) -> int:
    return key_slot(key.encode())


def test_a_separator_inside_a_value_cannot_make_two_keys_equal() -> None:
    assert keys.audit_seen_member("acme", "bob", "1:x") != keys.audit_seen_member(
        "acme", "bob:1", "x"
    )
    assert keys.audit_budget(PREFIX, "bob:1") != keys.audit_budget(PREFIX, "bob") + ":1"


def test_a_part_holds_neither_the_separator_nor_a_cluster_hash_tag() -> None:
    part = key_part("a:{b}:c/ü\udc80")
    assert not set(part) & set(":{}")


@given(st.text(min_size=1), st.text(), st.text(min_size=1), st.text())
def test_distinct_claims_give_distinct_keys(t1: str, u1: str, t2: str, u2: str) -> None:
    if (t1, u1) != (t2, u2):
        assert keys.tenant_key(PREFIX, "rl:u", t1, u1) != keys.tenant_key(PREFIX, "rl:u", t2, u2)
        assert keys.audit_seen_member(t1, u1, "e") != keys.audit_seen_member(t2, u2, "e")
    if u1 != u2:
        assert keys.user_key(PREFIX, "live", u1) != keys.user_key(PREFIX, "live", u2)


@given(st.text(min_size=1), st.text(), st.text(min_size=1, max_size=128))
def test_keys_used_together_share_a_slot(tenant: str, user: str, event_id: str) -> None:
    # TAKE: the user's and the tenant's buckets (ACQUIRE/RENEW use the user's lease set alone).
    bucket = slot(keys.tenant_key(PREFIX, "rl:t", tenant))
    assert slot(keys.tenant_key(PREFIX, "rl:u", tenant, user)) == bucket
    # APPEND: the audit stream, its de-duplication index and the user's budget.
    assert slot(keys.audit_seen(PREFIX)) == slot(keys.audit_stream(PREFIX))
    assert slot(keys.audit_budget(PREFIX, user)) == slot(keys.audit_stream(PREFIX))
    assert len(keys.audit_seen_member(tenant, user, event_id)) == 32  # one size, whatever the id
    # PUBLISH, RESTORE: the revocation stream and each publisher's event_id key.
    stream = slot(keys.revocation_stream(PREFIX))
    assert slot(keys.revocation_event(PREFIX, event_id)) == stream


def test_the_revocation_keys_share_the_streams_slot_and_every_key_starts_with_the_prefix() -> None:
    stream = keys.revocation_stream(PREFIX)
    assert slot(keys.revocation_epoch(PREFIX)) == slot(stream)
    assert slot(keys.revocation_origins(PREFIX)) == slot(stream)
    every = [stream, keys.revocation_epoch(PREFIX), keys.revocation_origins(PREFIX),
             keys.audit_stream(PREFIX), keys.security_stream(PREFIX),
             keys.audit_seen(PREFIX), keys.audit_budget(PREFIX, "alice"),
             keys.revocation_event(PREFIX, "{e1}"),
             keys.tenant_key(PREFIX, "rl:u", "acme", "alice"),
             keys.user_key(PREFIX, "live", "alice")]  # fmt: skip
    assert all(k.startswith(f"{PREFIX}:") for k in every)
