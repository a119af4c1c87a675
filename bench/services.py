"""What the benchmark runs against: a throwaway schema of two tenants' tasks, our fake Electric
and the gateway as subprocesses. Each is a context manager, so it is torn down (schema dropped,
processes sent SIGTERM, then SIGKILL) on errors and Ctrl-C too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import psycopg
from psycopg import sql

from bench.processes import spawn, stop
from tests.factories import make_token

TENANTS: Final = ("acme", "globex")
USERS: Final = ("alice", "bob", "carol", "dave")
STATUSES: Final = ("open", "done", "blocked")
START_TIMEOUT: Final = 30.0  # seconds for a server to print that it listens
# Environment the gateway must not inherit: the benchmark decides its configuration.
LONG_POLL_TIMEOUT: Final = 20.0  # the fake's, as Electric's default
TENANT: Final = "acme"  # whose rows the benchmark reads
SHAPE: Final = "tasks"
HIGH_LIMIT: Final = 1_000_000_000
SCHEMA_PREFIX: Final = "bench_http_"  # then the creating PID and a random suffix
_GATEWAY_ENV_PREFIXES: Final = ("GATEWAY_", "JWT_", "ELECTRIC_", "REDIS_URL", "LOG_FORMAT")


@dataclass(frozen=True, slots=True)
class Schema:
    """A schema with a tasks table of two tenants, as tests/functional/conftest.py has it."""

    dsn: str
    name: str

    def execute(self, query: str, params: tuple[Any, ...] = ()) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL(query).format(schema=sql.Identifier(self.name)), params)

    def insert_task(self, task_id: int, tenant: str) -> None:
        self.execute(
            "INSERT INTO {schema}.tasks VALUES (%s, %s, 1, 'added by the benchmark', 'open', "
            "'alice')",
            (task_id, tenant),
        )


def drop_orphaned_schemas(dsn: str) -> None:
    """Drop the schemas of benchmarks whose process is gone (SIGKILL leaves them behind). The
    name carries the creating PID; only processes on this machine are known, as with the
    loopback-only servers."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", [SCHEMA_PREFIX]
            )
        ]
        for name in names:
            pid = name.removeprefix(SCHEMA_PREFIX).split("_", 1)[0]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@contextlib.contextmanager
def created_schema(dsn: str, rows_per_tenant: int) -> Iterator[Schema]:
    """A fresh schema, dropped at the end; first drops those of benchmarks killed outright."""
    drop_orphaned_schemas(dsn)
    schema = Schema(dsn, f"{SCHEMA_PREFIX}{os.getpid()}_{uuid.uuid4().hex[:8]}")
    schema.execute("CREATE SCHEMA {schema}")
    try:
        schema.execute(
            "CREATE TABLE {schema}.tasks (id int PRIMARY KEY, tenant_id text NOT NULL, "
            "project_id int, title text, status text, assigned_to text, salary int DEFAULT 1000)"
        )
        rows = [
            (
                number * len(TENANTS) + t + 1,
                tenant,
                number % 5 + 1,
                f"{tenant} task {number}: write the quarterly report",
                STATUSES[number % len(STATUSES)],
                USERS[number % len(USERS)],
            )
            for number in range(rows_per_tenant)
            for t, tenant in enumerate(TENANTS)
        ]
        with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cursor:
            cursor.executemany(
                sql.SQL("INSERT INTO {}.tasks VALUES (%s, %s, %s, %s, %s, %s)").format(
                    sql.Identifier(schema.name)
                ),
                rows,
            )
        yield schema
    finally:
        schema.execute("DROP SCHEMA {schema} CASCADE")


def rules_yaml(schema: str) -> str:
    return f"""\
version: 1
identity: {{user: sub, tenant: tid, role: role}}
roles: [admin, member]
shapes:
  tasks:
    table: {schema}.tasks
    where: "tenant_id = :tenant"
    client_where: [status, project_id]
    allow:
      admin: {{}}
      member:
        where: "tenant_id = :tenant AND assigned_to = :user"
        columns: [id, tenant_id, project_id, title, status, assigned_to]
# Far above what the benchmark sends: the limiter runs on every request (its cost is measured)
# but never refuses one.
limits:
  default:
    requests_per_minute: {HIGH_LIMIT}
    tenant_requests_per_minute: {HIGH_LIMIT}
    live_connections_per_user: {HIGH_LIMIT}
"""


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    process: asyncio.subprocess.Process
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.returncode is None


def electric_url(line: str) -> str | None:
    marker = "electric-fake listening on "
    return line.split(marker, 1)[1].strip() if marker in line else None


def gateway_url(line: str) -> str | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("event") != "gateway_listening":
        return None
    port = str(event["url"]).rsplit(":", 1)[1]
    return f"http://127.0.0.1:{port}"  # it may report 0.0.0.0; we always talk over loopback


async def _wait_for_url(
    service: str,
    log: Path,
    process: asyncio.subprocess.Process,
    find: Callable[[str], str | None],
) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        lines = _log_lines(log)
        url = next((u for u in map(find, lines) if u is not None), None)
        if url is not None:
            return url
        if process.returncode is not None:
            break
        await asyncio.sleep(0.05)
    tail = "\n".join(_log_lines(log)[-20:])
    raise RuntimeError(f"{service} did not start (log {log}):\n{tail}")


def _log_lines(log: Path) -> list[str]:
    # A few KiB of local file while a server starts: not worth a thread.
    return log.read_text(errors="replace").splitlines()


@contextlib.asynccontextmanager
async def running(
    name: str,
    argv: list[str],
    env: Mapping[str, str],
    log: Path,
    find_url: Callable[[str], str | None],
) -> AsyncIterator[Service]:
    """Run `argv` (stdout and stderr to `log`) until the block ends; yield once it listens."""
    with log.open("wb") as sink:
        process = await spawn(argv, env, sink, asyncio.subprocess.STDOUT)
    try:
        url = await _wait_for_url(name, log, process, find_url)
        yield Service(name, process, url, log)
    finally:
        await stop(process)


def electric_argv(dsn: str, secret: str, long_poll_timeout: float) -> list[str]:
    return [
        sys.executable, "-m", "tests.electric", "--host", "127.0.0.1", "--port", "0",
        "--dsn", dsn, "--secret", secret, "--long-poll-timeout", str(long_poll_timeout),
    ]  # fmt: skip


def gateway_argv(rules: Path, upstream: str, profile: Path | None) -> list[str]:
    """`shape-gateway serve` on loopback; under cProfile (bench/profiled.py) when `profile`."""
    serve = ["serve", "--host", "127.0.0.1", "--port", "0", "--rules", str(rules),
             "--upstream", upstream]  # fmt: skip
    if profile is not None:
        return [sys.executable, "-m", "bench.profiled", str(profile), *serve]
    script = Path(sys.executable).with_name("shape-gateway")
    return [str(script), *serve] if script.exists() else [sys.executable, "-m", "gateway", *serve]


def gateway_env(jwt_secret: str, electric_secret: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_GATEWAY_ENV_PREFIXES)}
    env.update(JWT_SECRET=jwt_secret, ELECTRIC_SECRET=electric_secret, LOG_FORMAT="json")
    return env


@dataclass(frozen=True, slots=True)
class Stack:
    """Everything running for one benchmark, and tokens for its callers."""

    schema: Schema
    electric: Service
    gateway: Service
    session: aiohttp.ClientSession
    workdir: Path
    jwt_secret: str
    rows: int  # per tenant: the snapshot's size

    def token(self, user: str = "bench") -> str:
        return make_token(key=self.jwt_secret, sub=user, tid=TENANT, role="admin")
