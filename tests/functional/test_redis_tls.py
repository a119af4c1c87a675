"""`rediss://` for real: a redis-server that listens only on TLS, with a certificate from a CA
made for the test and one ACL user (the default user is off) allowed only the gateway's keys
and the commands docs/redis.md lists. The gateway trusts the CA named by `ssl_ca_certs`, logs
in with the URL's user and password, names its connections, and is not ready when the CA or
the password is wrong.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.factories import make_token
from tests.functional.test_revocation_functional import ready
from tests.gateway import ADMIN_TOKEN, Gateway, GatewayFactory
from tests.redis_servers import RedisServers, make_tls_files, supports_tls

pytestmark = [pytest.mark.redis]
PREFIX = "gw-tls"
USER, PASSWORD = "gateway", "tls-test-password-0123"


@pytest.fixture(autouse=True)
def _tls_build() -> None:
    if not supports_tls():
        pytest.skip("this redis-server was built without TLS (--tls-port is unknown to it)")


async def readyz(gateway: Gateway) -> int:
    async with gateway.request("GET", "/readyz", token=None) as response:
        status: int = response.status
        return status


async def test_gateway_reaches_a_tls_redis_with_a_username_and_password(
    gateway_factory: GatewayFactory, redis_servers: RedisServers
) -> None:
    server, tls = redis_servers.tls(USER, PASSWORD, PREFIX)
    url = f"rediss://{USER}:{PASSWORD}@localhost:{server.port}/0?ssl_ca_certs={tls.ca}"
    a = await gateway_factory(redis_url=url, redis_prefix=PREFIX)
    b = await gateway_factory(redis_url=url, redis_prefix=PREFIX)
    await ready(a)
    await ready(b)
    alice = make_token(sub="alice", tid="acme", role="member", iat=int(time.time()) - 5)
    event = {"type": "session.revoked", "user": "alice"}
    async with a.request("POST", "/admin/revocations", token=ADMIN_TOKEN, json=event) as response:
        assert response.status == 202
    deadline = time.monotonic() + 2
    while True:
        async with b.request("GET", "/v1/memberships", token=alice) as response:
            if response.status == 401:
                break
        assert time.monotonic() < deadline, "the revocation did not reach the other replica"
        await asyncio.sleep(0.05)
    bob = make_token(sub="bob", tid="acme", role="member")
    batch = [{"id": "e1", "action": "x"}]
    with capture_logs() as logs:  # every command allowed by the documented ACL: none fails open
        async with a.request("POST", "/v1/audit-events", token=bob, json=batch) as r:
            assert (await r.json())["accepted"] == ["e1"]
        async with a.request("GET", "/v1/events", token=bob) as feed:  # a live slot
            assert feed.status == 200
        async with a.shape({"table": "nope", "offset": "-1"}, token=bob) as refused:
            assert refused.status == 404  # a security event
        await asyncio.sleep(0.2)  # the release and the security event are written meanwhile
    assert [e for e in logs if e["log_level"] in ("warning", "error")] == []
    client = server.client()
    try:
        connections = client.client_list()
    finally:
        client.close()
    names = {c["name"].rsplit(":", 1)[-1] for c in connections if c["user"] == USER}
    assert {"revocations", "limits", "audit"} <= names


async def test_a_wrong_ca_or_password_leaves_the_gateway_not_ready(
    gateway_factory: GatewayFactory, redis_servers: RedisServers, tmp_path: Path
) -> None:
    server, tls = redis_servers.tls(USER, PASSWORD, PREFIX)
    other_ca = make_tls_files(tmp_path / "other").ca
    wrong = [
        f"rediss://{USER}:{PASSWORD}@localhost:{server.port}/0?ssl_ca_certs={other_ca}",
        f"rediss://{USER}:not-the-password@localhost:{server.port}/0?ssl_ca_certs={tls.ca}",
        f"redis://{USER}:{PASSWORD}@localhost:{server.port}/0",  # plain text to a TLS port
    ]
    gateways = [await gateway_factory(redis_url=url, redis_prefix=PREFIX) for url in wrong]
    await asyncio.sleep(1.0)  # several attempts each
    assert [await readyz(g) for g in gateways] == [503, 503, 503]
