"""The client package (`@shape-gateway/client`) in Chromium, for what only a browser shows:
IndexedDB deleted when access ends and kept when it does not, a token refreshed mid live sync,
switching tenants, rows past `local_ttl` dropped, and the local key's two modes.

The world, started once for the module: a schema of tasks on PostgreSQL, the Electric imitation
on it, `shape-gateway serve` (JWT_LEEWAY=0, the admin API, a local key secret, CORS for the
harness), and the harness page (tests/browser/harness.py), which imports the built package
through an import map as an app would. Each test opens the page in a browser context of its
own, as a user of its own (revocations stay in the gateway for the module's life).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import jwt
import psycopg
import pytest
from psycopg import sql

from tests.browser.conftest import ROOT
from tests.client.conftest import TASK_ROWS, _clean_environment, _electric_url, _gateway_url
from tests.factories import SECRET

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from tests.browser.package_pages import HarnessPage

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

ADMIN_TOKEN: Final = "admin-token-for-package-browser-tests-0123"
LOCAL_KEY_SECRET: Final = "local-key-secret-for-browser-tests-0123456789"
START_TIMEOUT: Final = 30.0
ENDED_WITHIN: Final = 2.0  # seconds from a revocation to the client's cleared store
ACME: Final = ["review spec", "ship", "write spec"]
GLOBEX: Final = ["globex other", "globex secret plan"]


@dataclass(frozen=True)
class World:
    gateway: str
    harness: str
    schema: str
    database_url: str

    def revoke(self, **event: str) -> str:
        request = urllib.request.Request(  # noqa: S310 - http to our own loopback gateway
            f"{self.gateway}/admin/revocations",
            data=json.dumps(event).encode(),
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - same
            return str(json.load(answer)["id"])

    def insert(self, task_id: int, tenant: str, title: str) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL(
                    "INSERT INTO {}.tasks (id, tenant_id, project_id, title, status, assigned_to) "
                    "VALUES (%s, %s, 1, %s, 'open', 'nobody')"
                ).format(sql.Identifier(self.schema)),
                (task_id, tenant, title),
            )


def _rules(schema: str) -> str:
    return f"""\
version: 1
identity: {{user: sub, tenant: tid, role: role, memberships: tenants}}
roles: [admin]
shapes:
  tasks:
    table: {schema}.tasks
    where: "tenant_id = :tenant"
    allow: [admin]
  notes:
    table: {schema}.tasks
    where: "tenant_id = :tenant"
    local_ttl: 2s
    allow: [admin]
"""


def _start(
    args: list[str], log: Path, env: dict[str, str], find: Callable[[str], str | None]
) -> tuple[subprocess.Popen[bytes], str]:
    with log.open("wb") as output:
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT
    while (url := find(log.read_text(errors="replace"))) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{args[2]} did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.05)  # polling another process's output file
    return process, url


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _harness_url(text: str) -> str | None:
    found = re.search(r"harness listening on (http://\S+)", text)
    return found.group(1) if found else None


@pytest.fixture(scope="module")
def world(
    chromium: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    if not (ROOT / "clients" / "js" / "dist" / "index.js").is_file():
        pytest.fail("the client package is not built: `make npm`", pytrace=False)
    logs = tmp_path_factory.mktemp("package-world")
    schema = f"gw_pkg_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {}.tasks (id int PRIMARY KEY, tenant_id text NOT NULL, "
                "project_id int, title text, status text, assigned_to text)"
            ).format(sql.Identifier(schema))
        )
        for row in TASK_ROWS:
            conn.execute(
                sql.SQL("INSERT INTO {}.tasks VALUES (%s, %s, %s, %s, %s, %s)").format(
                    sql.Identifier(schema)
                ),
                row,
            )
    rules = logs / "rules.yaml"
    rules.write_text(_rules(schema))
    clean = _clean_environment()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        harness, harness_url = _start(
            [sys.executable, "-m", "tests.browser.harness", "--port", "0"],
            logs / "harness.log", {**clean, "HARNESS_JWT_SECRET": SECRET}, _harness_url,
        )  # fmt: skip
        processes.append(harness)
        electric, electric_url = _start(
            [sys.executable, "-m", "electric_imitation", "--host", "127.0.0.1", "--port", "0",
             "--dsn", database_url, "--secret", "electric-secret", "--long-poll-timeout", "2"],
            logs / "electric.log", clean, _electric_url,
        )  # fmt: skip
        processes.append(electric)
        gateway_env = {
            **clean,
            "JWT_SECRET": SECRET,
            "JWT_LEEWAY": "0",
            "ELECTRIC_SECRET": "electric-secret",
            "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
            "GATEWAY_LOCAL_KEY_SECRET": LOCAL_KEY_SECRET,
            "GATEWAY_CORS_ORIGINS": harness_url,
            "LOG_FORMAT": "json",
        }
        gateway, gateway_url = _start(
            [sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", "0",
             "--rules", str(rules), "--upstream", electric_url],
            logs / "gateway.log", gateway_env, _gateway_url,
        )  # fmt: skip
        processes.append(gateway)
        yield World(gateway_url, harness_url, schema, database_url)
    finally:
        for process in reversed(processes):
            _stop(process)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def pages(browser: Browser, world: World) -> Iterator[Callable[[], HarnessPage]]:
    from tests.browser.package_pages import HarnessPage  # noqa: PLC0415 - imports playwright

    opened: list[HarnessPage] = []

    def open_page() -> HarnessPage:
        page = HarnessPage(browser, world.harness, world.gateway)
        opened.append(page)
        page.load()
        return page

    yield open_page
    for page in opened:
        page.close()


def admin(user: str, tenant: str = "acme", **claims: Any) -> dict[str, Any]:
    return {"sub": user, "tid": tenant, "role": "admin", **claims}


def token(user: str, tenant: str = "acme", issued_ago: int = 5, **claims: Any) -> str:
    now = int(time.time()) - issued_ago
    return jwt.encode(
        {**admin(user, tenant, **claims), "iat": now, "exp": now + 600}, SECRET, "HS256"
    )


def rows_of(page: HarnessPage, database: str, store: str = "rows") -> list[Any]:
    return page.databases().get(database, {}).get(store, [])


TITLES: Final = "(app, name) => app.titles(name)"
SYNCED: Final = "(app, name) => app.synced(name)"
ENDED: Final = "(app) => app.ended.length > 0 && app.ended"
UNSEAL: Final = "(app) => app.unseal()"


def test_a_revocation_stops_the_shapes_and_deletes_the_tenants_indexeddb(
    pages: Callable[[], HarnessPage], world: World
) -> None:
    page = pages()
    page.start(claims={**admin("uma"), "iat_offset": -2}, tenant="acme", user="uma",
               shapes=[{"name": "tasks"}])  # fmt: skip
    page.wait_for("acme's rows", f"(app) => app.titles('tasks').length === {len(ACME)}")
    assert sorted(r["value"]["title"] for r in rows_of(page, "harness/uma/acme")) == ACME
    started = time.monotonic()
    world.revoke(type="membership.revoked", user="uma", tenant="acme")
    ended = page.wait_for("access ended", ENDED, within=ENDED_WITHIN)
    assert [(e["code"], e["tenant"]) for e in ended] == [("access_revoked", "acme")]
    gone = "async (app) => !(await app.hasDatabase('harness/uma/acme'))"
    page.wait_for("the store deleted", gone, within=ENDED_WITHIN)
    assert time.monotonic() - started < ENDED_WITHIN
    stopped = len(page.requests)
    time.sleep(2.5)  # a live shape would have polled again by now
    assert page.shape_requests(since=stopped) == []
    assert page.call("(app) => app.ended.length") == 1


def test_a_replayed_suspension_and_reinstatement_delete_nothing(
    pages: Callable[[], HarnessPage], world: World
) -> None:
    page = pages()
    held = token("vera", "globex", issued_ago=5)  # the app keeps its token across the reload
    page.start(token=held, tenant="globex", user="vera", shapes=[{"name": "tasks"}])
    page.wait_for("globex's rows", f"(app) => app.titles('tasks').length === {len(GLOBEX)}")
    page.wait_for("up to date", SYNCED, "tasks")
    page.page.goto("about:blank")  # the app is gone; its IndexedDB stays
    world.revoke(type="tenant.suspended", tenant="globex")
    world.revoke(type="tenant.reinstated", tenant="globex")
    before = len(page.requests)
    page.load()
    page.start(token=held, tenant="globex", user="vera", shapes=[{"name": "tasks"}])
    # The feed replays both events (they are newer than the token): folded, they end nothing.
    page.wait_for_request("/v1/events", since=before)
    page.wait_for("up to date", SYNCED, "tasks")
    time.sleep(1.0)  # the replay was folded and acted on
    assert page.call("(app) => app.ended") == []
    assert sorted(r["value"]["title"] for r in rows_of(page, "harness/vera/globex")) == GLOBEX
    assert page.call(TITLES, "tasks") == GLOBEX
    # It went on from where it was: no new snapshot.
    after = page.shape_requests(since=before)
    assert after
    assert all(r["query"].get("offset") != "-1" for r in after), after


def test_a_token_that_expires_mid_live_sync_is_refreshed_and_sync_goes_on(
    pages: Callable[[], HarnessPage], world: World
) -> None:
    page = pages()
    # A tenant of its own: the row written here is in nobody else's shape.
    page.start(claims=admin("walt", "initech"), firstTtl=3, tenant="initech", user="walt",
               shapes=[{"name": "tasks"}])  # fmt: skip
    page.wait_for("up to date", SYNCED, "tasks")
    assert page.call("(app) => app.tokens") == 1
    # JWT_LEEWAY=0: 3 s after it was issued the token is refused as token_expired, whether
    # the gateway cuts the held long-poll or answers the next one.
    page.wait_for("a second token", "(app) => app.tokens === 2", within=10)
    world.insert(200, "initech", "written after the refresh")
    arrived = "(app) => app.titles('tasks').includes('written after the refresh')"
    page.wait_for("the new row", arrived, within=5)
    requests = page.shape_requests()
    assert [r["query"]["offset"] for r in requests].count("-1") == 1, "no new snapshot"
    refused = [i for i, r in enumerate(requests) if r["status"] == 401]
    assert refused, requests
    retry = requests[refused[0] + 1]
    assert retry["query"] == requests[refused[0]]["query"]  # the very request, retried once
    assert retry["status"] == 200
    assert page.call("(app) => app.tokens") == 2
    assert page.call("(app) => app.ended") == []


def test_switching_tenants_stops_one_tenants_shapes_and_keeps_each_tenants_data(
    pages: Callable[[], HarnessPage], world: World
) -> None:
    page = pages()
    tenants = {"acme": "admin", "globex": "admin"}
    page.start(claims=admin("xena", tenants=tenants), tenant="acme", user="xena",
               shapes=[{"name": "tasks"}])  # fmt: skip
    page.wait_for("acme's rows", f"(app) => app.titles('tasks').length === {len(ACME)}")
    page.wait_for("up to date", SYNCED, "tasks")
    switched = len(page.requests)
    page.call("(app) => app.switchTo('globex', [{name: 'tasks'}])")
    page.wait_for("globex's rows", f"(app) => app.titles('tasks').length === {len(GLOBEX)}")
    assert page.call(TITLES, "tasks") == GLOBEX
    time.sleep(2.5)  # acme's live shape would have polled again by now
    after = page.shape_requests(since=switched)
    assert after
    assert {r["tenant"] for r in after} == {"globex"}
    # acme's data is kept, in its own database; back in acme, sync goes on from there.
    assert sorted(r["value"]["title"] for r in rows_of(page, "harness/xena/acme")) == ACME
    assert sorted(r["value"]["title"] for r in rows_of(page, "harness/xena/globex")) == GLOBEX
    back = len(page.requests)
    page.call("(app) => app.switchTo('acme', [{name: 'tasks'}])")
    page.wait_for("acme again", f"(app) => app.titles('tasks').length === {len(ACME)}")
    page.wait_for("acme's shape answered", "(app) => app.synced('tasks')")
    again = page.shape_requests(since=back)
    assert again
    assert all(r["tenant"] == "acme" and r["query"].get("offset") != "-1" for r in again), again


def test_rows_past_local_ttl_are_dropped_on_start_and_on_a_timer(
    pages: Callable[[], HarnessPage], world: World
) -> None:
    # `notes` has local_ttl: 2s. Synced once (not live), the gateway serves it no more.
    page = pages()
    page.start(claims=admin("yuri"), tenant="acme", user="yuri", expiryInterval=300,
               shapes=[{"name": "notes", "live": False}])  # fmt: skip
    page.wait_for("the notes", "(app) => app.titles('notes').length === 3")
    stored = page.databases()["harness/yuri/acme"]
    assert len(stored["rows"]) == 3
    assert stored["shapes"][0]["localTtl"] == 2
    # On the timer, while the page runs:
    dropped = (
        "async (app) => app.titles('notes').length === 0"
        " && (await app.storedRows('harness/yuri/acme')).length === 0"
    )
    page.wait_for("the rows dropped", dropped, within=4)
    assert page.databases()["harness/yuri/acme"]["shapes"] == []  # the position too
    # On start: synced again, the page left, back after the ttl with the gateway unreachable.
    page.start(claims=admin("yuri"), tenant="acme", user="yuri", expiryInterval=60_000,
               shapes=[{"name": "notes", "live": False}])  # fmt: skip
    page.wait_for("the notes again", "(app) => app.titles('notes').length === 3")
    page.page.goto("about:blank")
    time.sleep(2.5)
    restore = page.unreachable()
    page.load()
    page.start(claims=admin("yuri"), tenant="acme", user="yuri", expiryInterval=60_000,
               shapes=[{"name": "notes", "live": False}])  # fmt: skip
    assert page.call(TITLES, "notes") == []
    assert page.databases()["harness/yuri/acme"]["rows"] == []
    restore()


def test_the_local_key_is_refused_after_a_revocation_and_memory_mode_keeps_nothing_readable(
    pages: Callable[[], HarnessPage], world: World
) -> None:
    held = token("zoe", issued_ago=5)
    page = pages()
    page.start(token=held, tenant="acme", user="zoe", feed=False)
    sealed = page.call("(app) => app.seal({ salary: 5000 })")
    assert "5000" not in sealed
    assert page.call(UNSEAL) == {"value": {"salary": 5000}}
    assert "shape-gateway-local-keys" not in page.databases()  # memory mode writes no key
    # Reloaded, the key comes from the gateway again; unreachable, nothing is readable.
    page.load()
    page.start(token=held, tenant="acme", user="zoe", feed=False)
    assert page.call(UNSEAL) == {"value": {"salary": 5000}}
    page.load()
    restore = page.unreachable()
    page.start(token=held, tenant="acme", user="zoe", feed=False)
    assert page.call(UNSEAL)["error"] == "TypeError"  # the fetch failed: no key, no value
    restore()
    # Revoked, the gateway refuses the key: the value stays sealed, and access ends.
    world.revoke(type="membership.revoked", user="zoe", tenant="acme")
    page.load()
    page.start(token=held, tenant="acme", user="zoe", feed=False)
    assert page.call(UNSEAL) == {"error": "GatewayError", "code": "access_revoked"}
    assert [(e["code"], e["tenant"]) for e in page.wait_for("access ended", ENDED)] == [
        ("access_revoked", "acme")
    ]


def test_lease_mode_reads_offline_until_access_ends_then_deletes_the_key(
    pages: Callable[[], HarnessPage], world: World
) -> None:
    held = token("abe", issued_ago=5)
    page = pages()
    page.start(token=held, tenant="acme", user="abe", localKey="lease")
    page.call("(app) => app.seal('the plan')")
    (kept,) = page.databases()["shape-gateway-local-keys"]["keys"]
    assert kept["key"] == {"extractable": False, "algorithm": "AES-GCM"}  # never the bytes
    assert kept["expiresAt"] > time.time() * 1000 + 3600_000
    page.load()
    restore = page.unreachable()  # offline: the leased key still reads
    page.start(token=held, tenant="acme", user="abe", localKey="lease")
    assert page.call(UNSEAL) == {"value": "the plan"}
    restore()
    world.revoke(type="membership.revoked", user="abe", tenant="acme")
    page.load()
    page.start(token=held, tenant="acme", user="abe", localKey="lease")
    page.wait_for("access ended", ENDED)  # the feed's refusal, on start
    assert page.databases()["shape-gateway-local-keys"]["keys"] == []
    assert page.call(UNSEAL)["error"] in {"GatewayError", "Error"}
