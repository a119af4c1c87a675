"""Processes for the real-client tests: Electric, `shape-gateway serve`, the Node driver.

Everything is a real process on loopback, started the way ops and the demo start it, so the
client meets the gateway's real sockets, streaming and headers. Each process logs to a file in
the test's tmp_path; a failed wait quotes the driver's last events and those logs.

Electric is the imitation (`python -m electric_imitation`), once per imitated version (1.0.10 and
1.7), or a real server behind a recording tap when one is configured (`tests/electric_targets`).

Node.js and `tests/client/node_modules` (`npm ci --prefix tests/client`) are required: missing
ones skip these tests locally and fail them under CI (`CI` set).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import psycopg
import pytest
from psycopg import sql

from electric_imitation.real import start_tap
from tests.electric_targets import ElectricTarget
from tests.factories import SECRET
from tests.requirements import unavailable

CLIENT_DIR: Final = Path(__file__).resolve().parent
ROOT: Final = CLIENT_DIR.parent.parent
DRIVER: Final = CLIENT_DIR / "sync.mjs"
CLIENT_PACKAGE: Final = CLIENT_DIR / "node_modules" / "@electric-sql" / "client" / "package.json"
ELECTRIC_SECRET: Final = "electric-secret-for-client-tests"
ADMIN_TOKEN: Final = "admin-token-for-client-tests-0123456789"
START_TIMEOUT: Final = 20.0  # seconds for a process to say it is listening
STOP_TIMEOUT: Final = 5.0  # seconds between SIGTERM and SIGKILL

Event = dict[str, Any]
Predicate = Callable[[Event], bool]

TASK_ROWS: Final = [
    (1, "acme", 1, "write spec", "open", "alice"),
    (2, "acme", 1, "review spec", "done", "bob"),
    (3, "acme", 2, "ship", "open", "alice"),
    (4, "globex", 1, "globex secret plan", "open", "alice"),
    (5, "globex", 2, "globex other", "open", "carol"),
]
MEMBER_COLUMNS: Final = ("id", "tenant_id", "project_id", "title", "status", "assigned_to")


@pytest.fixture(scope="session")
def node() -> str:
    """The `node` executable, with the pinned client installed next to the driver."""
    executable = shutil.which("node")
    if executable is None:
        unavailable(
            "real-client", "node is not on PATH; install Node.js 18+ to run the real-client tests"
        )
    if not CLIENT_PACKAGE.exists():
        unavailable(
            "real-client",
            "@electric-sql/client is not installed; run `npm ci --prefix tests/client` "
            "(`make test` does when npm is on PATH)",
        )
    return executable


@dataclass(frozen=True)
class Tasks:
    """A schema of its own holding tasks of tenants acme and globex (TASK_ROWS)."""

    schema: str
    database_url: str

    @property
    def table(self) -> str:
        return f"{self.schema}.tasks"

    @property
    def rules(self) -> str:
        return f"""\
version: 1
identity: {{user: sub, tenant: tid, role: role}}
roles: [admin, manager, member]
shapes:
  tasks:
    table: {self.table}
    where: "tenant_id = :tenant"
    allow:
      admin: {{}}
      member:
        where: "tenant_id = :tenant AND assigned_to = :user"
        columns: [{", ".join(MEMBER_COLUMNS)}]
"""

    def key(self, task_id: int) -> str:
        """The key Electric gives the row: quoted schema, table and primary key."""
        return f'"{self.schema}"."tasks"/"{task_id}"'

    def execute(self, query: str, params: Sequence[Any] = ()) -> None:
        """Run `query` in its own committed transaction; `{schema}` names this schema."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute(sql.SQL(query).format(schema=sql.Identifier(self.schema)), params)

    def insert(self, task_id: int, tenant: str, assigned_to: str, title: str = "new") -> None:
        self.execute(
            "INSERT INTO {schema}.tasks (id, tenant_id, project_id, title, status, assigned_to) "
            "VALUES (%s, %s, 1, %s, 'open', %s)",
            (task_id, tenant, title, assigned_to),
        )


@pytest.fixture
def tasks(electric_database_url: str) -> Iterator[Tasks]:
    world = Tasks(f"gw_client_{uuid.uuid4().hex[:8]}", electric_database_url)
    world.execute("CREATE SCHEMA {schema}")
    world.execute(
        "CREATE TABLE {schema}.tasks (id int PRIMARY KEY, tenant_id text NOT NULL, "
        "project_id int, title text, status text, assigned_to text, salary int DEFAULT 1000)"
    )
    for row in TASK_ROWS:
        world.execute("INSERT INTO {schema}.tasks VALUES (%s, %s, %s, %s, %s, %s)", row)
    yield world
    world.execute("DROP SCHEMA {schema} CASCADE")


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"--- {path.name}: (no file)"
    return f"--- {path.name} (last {lines} lines)\n" + "\n".join(text.splitlines()[-lines:])


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL if it lingers; always reaped."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
    await process.wait()


def _electric_url(text: str) -> str | None:
    found = re.search(r"electric-fake listening on (http://\S+)", text)
    return found.group(1) if found else None


def _gateway_url(text: str) -> str | None:
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if isinstance(event, dict) and event.get("event") == "gateway_listening":
                return str(event["url"]).replace("0.0.0.0", "127.0.0.1")
    return None


@contextlib.asynccontextmanager
async def running(
    name: str,
    args: Sequence[str],
    log: Path,
    listening: Callable[[str], str | None],
    env: dict[str, str],
) -> AsyncIterator[str]:
    """Run `args` (cwd: the repository) until the block ends; yields the URL it listens on."""
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *args, cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=output,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT
        # A few KiB of local file, read between sleeps while the process starts.
        while (url := listening(log.read_text(errors="replace"))) is None:  # noqa: ASYNC240
            if process.returncode is not None or time.monotonic() > deadline:
                state = "exited" if process.returncode is not None else "did not start in time"
                pytest.fail(f"{name} {state}\n{_tail(log)}", pytrace=False)
            await asyncio.sleep(0.05)  # polling another process's log file
        yield url
    finally:
        await _stop(process)


@dataclass(frozen=True)
class Stack:
    """Fake Electric and the gateway in front of it, both real processes."""

    gateway: str
    electric: str
    tasks: Tasks
    logs: tuple[Path, ...]

    async def _control(self, method: str, path: str, body: object = None) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, f"{self.electric}/_control/{path}", json=body) as response,
        ):
            assert response.status < 300, await response.text()
            return await response.json()

    async def revoke(self, **event: str) -> str:
        """Publish a revocation event through the gateway's admin API; its id."""
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{self.gateway}/admin/revocations",
                json=event,
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            ) as response,
        ):
            assert response.status == 202, await response.text()
            body: dict[str, Any] = await response.json()
            return str(body["id"])

    async def rotate(self) -> list[dict[str, str]]:
        """Replace the table's shapes: Electric answers their handles with 409 from now on."""
        rotated: list[dict[str, str]] = (
            await self._control("POST", "rotate", {"table": self.tasks.table})
        )["rotated"]
        return rotated

    async def upstream_requests(self) -> list[dict[str, Any]]:
        """What the gateway sent Electric, oldest first."""
        requests: list[dict[str, Any]] = await self._control("GET", "requests")
        return requests

    async def electric_stats(self) -> dict[str, int]:
        stats: dict[str, int] = await self._control("GET", "stats")
        return stats


def _clean_environment() -> dict[str, str]:
    """The test runner's environment without any gateway, JWT, Electric or Redis settings."""
    prefixes = ("JWT_", "GATEWAY_", "ELECTRIC_", "REDIS_")
    return {name: value for name, value in os.environ.items() if not name.startswith(prefixes)}


@contextlib.asynccontextmanager
async def electric_upstream(target: ElectricTarget, tasks: Tasks, log: Path) -> AsyncIterator[str]:
    """The imitation as a process, or a tap in front of the real Electric; yields its URL."""
    if target.real is not None:
        async with start_tap(target.real.url, target.real.secret, ELECTRIC_SECRET) as tap:
            yield str(tap.url)
        return
    electric_args = [
        sys.executable, "-m", "electric_imitation", "--host", "127.0.0.1", "--port", "0",
        "--dsn", tasks.database_url, "--secret", ELECTRIC_SECRET,
        "--electric-version", target.version,
        "--long-poll-timeout", "2",  # live long-polls come back every 2 s
        "--sse-timeout", "60",  # an SSE stream outlives every test: no reconnects by design
    ]  # fmt: skip
    async with running(
        "Electric imitation", electric_args, log, _electric_url, _clean_environment()
    ) as url:
        yield url


@pytest.fixture
async def stack(
    node: str, tasks: Tasks, tmp_path: Path, electric_target: ElectricTarget
) -> AsyncIterator[Stack]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(tasks.rules)
    electric_log, gateway_log = tmp_path / "electric.log", tmp_path / "gateway.log"
    gateway_args = [
        sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", "0",
        "--rules", str(rules),
    ]  # fmt: skip
    gateway_env = {
        **_clean_environment(),
        "JWT_SECRET": SECRET,
        "ELECTRIC_SECRET": ELECTRIC_SECRET,
        "LOG_FORMAT": "json",
        "JWT_LEEWAY": "0",  # a token expires at its exp: the refresh test need not wait 30 s
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,  # the revocation test publishes through it
    }
    async with electric_upstream(electric_target, tasks, electric_log) as up:
        gateway_args += ["--upstream", up]
        async with running(
            "shape-gateway serve", gateway_args, gateway_log, _gateway_url, gateway_env
        ) as url:
            yield Stack(url, up, tasks, (gateway_log, electric_log))


class SyncClient:
    """One `node sync.mjs` process: a ShapeStream whose events are read as they happen.

    `wait_for` examines events in order, each once; `position` marks where it stands, so
    `events[mark:]` is everything seen since a mark, including events read by `observe`.
    """

    def __init__(self, process: asyncio.subprocess.Process, logs: Sequence[Path]) -> None:
        self._process = process
        self._logs = tuple(logs)
        self.events: list[Event] = []
        self.position = 0

    async def _read(self) -> None:
        assert self._process.stdout is not None
        line = await self._process.stdout.readline()
        if not line:
            await self._process.wait()
            raise AssertionError(self.explain(f"driver exited ({self._process.returncode})"))
        self.events.append(json.loads(line))

    async def wait_for(self, what: str, predicate: Predicate, within: float = 10.0) -> Event:
        """The next event matching `predicate`, within `within` seconds."""
        try:
            async with asyncio.timeout(within):
                while True:
                    while self.position < len(self.events):
                        event = self.events[self.position]
                        self.position += 1
                        if predicate(event):
                            return event
                    await self._read()
        except TimeoutError:
            raise AssertionError(self.explain(f"no {what} within {within} s")) from None

    async def observe(self, seconds: float) -> None:
        """Read whatever happens during `seconds` (for asserting what must not happen)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    await self._read()

    async def send_token(self, token: str) -> None:
        """Answer the driver's onError: retry with `token` (an empty string stops the stream)."""
        assert self._process.stdin is not None
        self._process.stdin.write(f"{token}\n".encode())
        await self._process.stdin.drain()

    def explain(self, problem: str) -> str:
        recent = "\n".join(json.dumps(event) for event in self.events[-40:])
        logs = "\n".join(_tail(path) for path in self._logs)
        return f"{problem}\n--- driver events (last 40)\n{recent}\n{logs}"

    async def stop(self) -> None:
        if self._process.stdin is not None and not self._process.stdin.is_closing():
            self._process.stdin.close()
        await _stop(self._process)


ClientFactory = Callable[..., Awaitable[SyncClient]]


@pytest.fixture
async def start_client(node: str, stack: Stack, tmp_path: Path) -> AsyncIterator[ClientFactory]:
    """start_client(token, **config): a ShapeStream on the gateway's `tasks` shape."""
    clients: list[SyncClient] = []

    async def start(token: str, **config: Any) -> SyncClient:
        options = {"url": f"{stack.gateway}/v1/shape", "table": "tasks", "token": token, **config}
        log = tmp_path / f"node-{len(clients)}.log"
        with log.open("wb") as errors:
            process = await asyncio.create_subprocess_exec(
                node, str(DRIVER), json.dumps(options), cwd=CLIENT_DIR,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=errors,
                limit=2**20,
            )  # fmt: skip
        client = SyncClient(process, (log, *stack.logs))
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.stop()
