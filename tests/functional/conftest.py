"""Functional fixtures: an Electric upstream, a schema of rows of several tenants and users, and
rules pointing at it.

The upstream is the imitation (electric_imitation) playing the version `electric_target` names, or
a real Electric behind a recording tap (electric_imitation/real); `tests/electric_targets.py`
decides which, and skips what the server cannot do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import redis
from aiohttp import web
from psycopg import sql
from yarl import URL

from electric_imitation import ELECTRIC, ElectricConfig, make_electric_app
from electric_imitation.real import start_tap
from tests.electric_targets import ElectricTarget, UpstreamHooks
from tests.factories import SECRET

ELECTRIC_SECRET = "electric-secret-for-tests"


@dataclass
class Electric:
    """The upstream a test's gateways talk to, and its hooks (the imitation's or a tap's)."""

    url: URL
    state: UpstreamHooks
    target: ElectricTarget


ElectricFactory = Callable[..., Awaitable[Electric]]


@pytest.fixture
async def electric_factory(
    electric_target: ElectricTarget, electric_database_url: str
) -> AsyncIterator[ElectricFactory]:
    """make(**ElectricConfig overrides) -> a started upstream; a real Electric ignores them."""
    async with contextlib.AsyncExitStack() as started:

        async def make(**config: Any) -> Electric:
            real = electric_target.real
            if real is not None:
                tap = await started.enter_async_context(
                    start_tap(real.url, real.secret, ELECTRIC_SECRET)
                )
                return Electric(tap.url, tap.state, electric_target)
            options: dict[str, Any] = {"secret": ELECTRIC_SECRET, "long_poll_timeout": 3.0}
            options.update(config)
            app = make_electric_app(
                ElectricConfig(
                    dsn=electric_database_url, version=electric_target.version, **options
                )
            )
            runner = web.AppRunner(app, handler_cancellation=True)
            await runner.setup()
            started.push_async_callback(runner.cleanup)
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            return Electric(URL(f"http://{host}:{port}"), app[ELECTRIC], electric_target)

        yield make


@pytest.fixture
async def electric(electric_factory: ElectricFactory) -> Electric:
    return await electric_factory()


@dataclass(frozen=True)
class World:
    """A schema with tasks of two tenants and three users, and rules scoped to it."""

    schema: str
    database_url: str

    @property
    def rules(self) -> str:
        return f"""\
version: 1
identity: {{user: sub, tenant: tid, role: role, memberships: tenants}}
roles: [admin, manager, member]
shapes:
  tasks:
    table: {self.schema}.tasks
    where: "tenant_id = :tenant"
    client_where: [status, project_id]
    allow:
      admin: {{}}
      manager: {{}}
      member:
        where: "tenant_id = :tenant AND assigned_to = :user"
        columns: [id, tenant_id, project_id, title, status, assigned_to]
  big:
    table: {self.schema}.big
    unscoped: true
    allow: [admin]
"""

    def execute(self, query: str, params: tuple[Any, ...] = ()) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute(sql.SQL(query).format(schema=sql.Identifier(self.schema)), params)


TASK_ROWS = [
    (1, "acme", 1, "write spec", "open", "alice"),
    (2, "acme", 1, "review spec", "done", "bob"),
    (3, "acme", 2, "ship", "open", "alice"),
    (4, "globex", 1, "globex secret plan", "open", "alice"),
    (5, "globex", 2, "globex other", "open", "carol"),
]


@pytest.fixture
def world(electric_database_url: str) -> Iterator[World]:
    schema = f"gw_f_{uuid.uuid4().hex[:8]}"
    world = World(schema, electric_database_url)
    world.execute("CREATE SCHEMA {schema}")
    world.execute(
        "CREATE TABLE {schema}.tasks (id int PRIMARY KEY, tenant_id text NOT NULL, "
        "project_id int, title text, status text, assigned_to text, salary int DEFAULT 1000)"
    )
    for row in TASK_ROWS:
        world.execute("INSERT INTO {schema}.tasks VALUES (%s, %s, %s, %s, %s, %s)", row)
    world.execute("CREATE TABLE {schema}.big (id int PRIMARY KEY, payload text)")
    yield world
    world.execute("DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own in the real Redis; its keys are deleted afterwards."""
    prefix = f"gw-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


async def serve_process(
    world: World, electric: Electric, redis_url: str, prefix: str, tmp_rules: str
) -> tuple[asyncio.subprocess.Process, str]:
    env = {**os.environ, "JWT_SECRET": SECRET, "ELECTRIC_SECRET": ELECTRIC_SECRET,
           "REDIS_URL": redis_url, "GATEWAY_REDIS_PREFIX": prefix, "LOG_FORMAT": "json",
           "GATEWAY_LIVE_LEASE_SECONDS": "3"}  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", "0",
        "--rules", tmp_rules, "--upstream", str(electric.url),
        env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    async with asyncio.timeout(10):
        while True:
            event = json.loads(await process.stderr.readline())
            if event["event"] == "gateway_listening":
                return process, str(event["url"]).replace("0.0.0.0", "127.0.0.1")
