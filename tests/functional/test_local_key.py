"""GET /v1/local-key: the caller's local encryption key for the active tenant, the same from
every replica, different for every user and tenant, never cached, refused like a shape once
access has ended, and absent without GATEWAY_LOCAL_KEY_SECRET."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from tests.factories import make_token
from tests.functional.test_revocation_functional import ready, revoke
from tests.gateway import Gateway, GatewayFactory

SECRET = "local-key-secret-for-tests-0123456789abcdef"


async def local_key(
    gateway: Gateway, token: str, tenant: str | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = {"X-Tenant-Id": tenant} if tenant else {}
    async with gateway.request("GET", "/v1/local-key", token=token, headers=headers) as response:
        return response.status, await response.json(), dict(response.headers)


@pytest.mark.redis
async def test_two_replicas_hand_out_the_same_key_and_never_let_it_be_cached(
    gateway_factory: GatewayFactory, redis_url: str, redis_prefix: str
) -> None:
    replicas = [
        await gateway_factory(
            local_key_secret=SECRET, redis_url=redis_url, redis_prefix=redis_prefix
        )
        for _ in range(2)
    ]
    for replica in replicas:
        await ready(replica)
    token = make_token()
    answers = [await local_key(replica, token) for replica in replicas]
    assert [status for status, _, _ in answers] == [200, 200]
    (_, first, headers), (_, second, _) = answers
    assert first == second
    assert set(first) == {"key", "key_id", "expires_in"}
    assert len(base64.urlsafe_b64decode(first["key"] + "=")) == 32
    assert first["expires_in"] == 86400
    assert "no-store" in headers["Cache-Control"]


async def test_each_user_and_each_tenant_gets_a_key_of_its_own(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory(local_key_secret=SECRET, local_key_lease=600)
    memberships = {"acme": "member", "globex": "admin"}
    alice = make_token(sub="alice", tid="acme", tenants=memberships)
    keys = {
        ("alice", "acme"): await local_key(gateway, alice),
        ("alice", "globex"): await local_key(gateway, alice, "globex"),
        ("bob", "acme"): await local_key(gateway, make_token(sub="bob", tid="acme")),
    }
    assert {status for status, _, _ in keys.values()} == {200}
    assert len({body["key"] for _, body, _ in keys.values()}) == 3
    assert len({body["key_id"] for _, body, _ in keys.values()}) == 3
    assert {body["expires_in"] for _, body, _ in keys.values()} == {600}
    # The same user and tenant with another token (a refreshed one): the same key.
    again = await local_key(gateway, make_token(sub="alice", tid="acme", iat=int(time.time()) - 5))
    assert again[1] == keys[("alice", "acme")][1]


async def test_a_key_is_refused_with_the_shape_codes_once_access_ended(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory(local_key_secret=SECRET)
    before = int(time.time()) - 5
    status, granted, _ = await local_key(gateway, make_token(iat=before))
    assert status == 200
    await revoke(gateway, type="membership.revoked", user="alice", tenant="acme")
    status, body, headers = await local_key(gateway, make_token(iat=before))
    assert (status, body["error"]) == (403, "access_revoked")
    assert headers["Clear-Site-Data"] == '"cache"'
    await revoke(gateway, type="tenant.suspended", tenant="globex")
    carol = make_token(sub="carol", tid="globex", iat=before)
    assert (await local_key(gateway, carol))[1]["error"] == "tenant_suspended"
    await revoke(gateway, type="session.revoked", user="dave")
    status, body, _ = await local_key(gateway, make_token(sub="dave", iat=before))
    assert (status, body["error"]) == (401, "session_revoked")
    # A token issued after the revocation gets the key again: the same one as before.
    status, again, _ = await local_key(gateway, make_token(iat=int(time.time()) + 1))
    assert (status, again["key"]) == (200, granted["key"])


async def test_without_the_secret_the_route_does_not_exist(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory()
    status, body, _ = await local_key(gateway, make_token())
    assert (status, body["error"]) == (404, "not_found")
    async with gateway.request("GET", "/v1/local-key", token=None) as anonymous:
        assert (anonymous.status, (await anonymous.json())["error"]) == (401, "missing_token")
