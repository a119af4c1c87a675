"""The client package (`clients/js`, `@shape-gateway/client`): its Node tests against a real
gateway, its version, and its installation the two ways the docs give.

`clients/js/test/*.test.mjs` run with Node's test runner (`node --test`): the pure parts (the
event fold, the SSE parser) on their own, and `gateway.test.mjs` against the processes started
here: the Electric imitation on PostgreSQL and `shape-gateway serve` (JWT_LEEWAY=0, the admin
API, GATEWAY_LOCAL_KEY_SECRET), plus a small helper the Node tests call to write rows. Needs
Node.js and the package built (`make test` runs `npm ci` and the build): missing, these tests
skip locally and fail under CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import pytest
from aiohttp import web

import gateway
from tests.client.conftest import (
    ADMIN_TOKEN,
    ELECTRIC_SECRET,
    ROOT,
    Tasks,
    _clean_environment,
    _gateway_url,
    _tail,
    electric_upstream,
    running,
)
from tests.electric_targets import ElectricTarget
from tests.factories import SECRET
from tests.requirements import unavailable

pytestmark = [pytest.mark.node, pytest.mark.postgres]

PACKAGE: Final = ROOT / "clients" / "js"
BUILT: Final = PACKAGE / "dist" / "index.js"
LOCAL_KEY_SECRET: Final = "local-key-secret-for-package-tests-0123456789"
NODE_TIMEOUT: Final = 240.0  # seconds for the whole Node suite


@pytest.fixture
def package(node: str) -> Path:
    """The built package, next to its pinned dependencies."""
    if not (PACKAGE / "node_modules" / "typescript").is_dir() or not BUILT.is_file():
        unavailable(
            "client package",
            "the client package is not built: `npm ci --prefix clients/js && npm run build "
            "--prefix clients/js` (`make test` does when npm is on PATH)",
        )
    return PACKAGE


def _rules(tasks: Tasks) -> str:
    return f"""\
version: 1
identity: {{user: sub, tenant: tid, role: role, memberships: tenants}}
roles: [admin, member]
shapes:
  tasks:
    table: {tasks.table}
    where: "tenant_id = :tenant"
    local_ttl: 1h
    allow:
      admin: {{}}
      member:
        where: "tenant_id = :tenant AND assigned_to = :user"
        columns: [id, tenant_id, project_id, title, status, assigned_to]
"""


@pytest.fixture
async def fixture_server(tasks: Tasks) -> AsyncIterator[str]:
    """What the Node tests cannot do themselves: write a row (POST /insert)."""

    async def insert(request: web.Request) -> web.Response:
        task: dict[str, Any] = await request.json()
        tasks.insert(
            int(task["id"]), str(task["tenant"]), str(task["assigned_to"]), str(task["title"])
        )
        return web.json_response({"inserted": task["id"]}, status=201)

    app = web.Application()
    app.router.add_post("/insert", insert)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


@pytest.fixture
async def package_gateway(
    package: Path, tasks: Tasks, tmp_path: Path, electric_target: ElectricTarget
) -> AsyncIterator[tuple[str, tuple[Path, ...]]]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(_rules(tasks))
    electric_log, gateway_log = tmp_path / "electric.log", tmp_path / "gateway.log"
    env = {
        **_clean_environment(),
        "JWT_SECRET": SECRET,
        "ELECTRIC_SECRET": ELECTRIC_SECRET,
        "LOG_FORMAT": "json",
        "JWT_LEEWAY": "0",  # a token expires at its exp: the refresh test need not wait 30 s
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "GATEWAY_LOCAL_KEY_SECRET": LOCAL_KEY_SECRET,
    }
    async with electric_upstream(electric_target, tasks, electric_log) as upstream:
        args = [
            sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", "0",
            "--rules", str(rules), "--upstream", upstream,
        ]  # fmt: skip
        async with running("shape-gateway serve", args, gateway_log, _gateway_url, env) as url:
            yield url, (gateway_log, electric_log)


@pytest.mark.timeout(NODE_TIMEOUT + 60)
async def test_the_package_passes_its_node_tests_against_a_real_gateway(
    node: str, package_gateway: tuple[str, tuple[Path, ...]], fixture_server: str, tmp_path: Path
) -> None:
    url, logs = package_gateway
    env = {
        **_clean_environment(),
        "SHAPE_GATEWAY_URL": url,
        "SHAPE_GATEWAY_JWT_SECRET": SECRET,
        "SHAPE_GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "SHAPE_GATEWAY_FIXTURE": fixture_server,
    }
    log = tmp_path / "node.log"
    with log.open("wb") as out:
        # --test-force-exit: the stock client keeps a timer of its own (saving up-to-date
        # positions, about a minute) that would hold the finished file's process open.
        process = await asyncio.create_subprocess_exec(
            node, "--test", "--test-force-exit", "--test-reporter=tap", "--test-concurrency=1",
            "test/",
            cwd=PACKAGE, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # the runner's children are stopped with it
        )  # fmt: skip
    try:
        async with asyncio.timeout(NODE_TIMEOUT):
            await process.wait()
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    output = log.read_text(errors="replace")
    summary = dict(re.findall(r"^# (tests|pass|fail|skipped|cancelled) (\d+)$", output, re.M))
    explain = f"{output[-12000:]}\n" + "\n".join(_tail(path) for path in logs)
    assert process.returncode == 0, explain
    assert summary.get("fail") == "0", explain
    assert summary.get("cancelled") == "0", explain
    assert summary.get("skipped") == "0", explain  # the gateway tests ran, every one
    assert int(summary.get("pass", "0")) >= 20, explain


def test_the_package_is_versioned_with_the_gateway() -> None:
    manifest = json.loads((PACKAGE / "package.json").read_text())
    lock = json.loads((PACKAGE / "package-lock.json").read_text())
    assert manifest["version"] == gateway.__version__
    assert lock["version"] == lock["packages"][""]["version"] == gateway.__version__
    demo = json.loads((ROOT / "deploy" / "web" / "package-lock.json").read_text())
    assert demo["packages"]["../../clients/js"]["version"] == gateway.__version__  # its link
    assert manifest["peerDependencies"] == {"@electric-sql/client": ">=1.5.0 <2"}
    assert "dependencies" not in manifest  # no runtime dependency beyond the peer


def test_the_package_installs_from_the_repository_path_and_as_a_packed_tarball(
    node: str, package: Path, tmp_path: Path
) -> None:
    npm = shutil.which("npm")
    if npm is None:
        unavailable("client package", "npm is not on PATH; install Node.js 20+ with npm")
    packed = subprocess.run(
        [npm, "pack", "--pack-destination", str(tmp_path), "--json", "--loglevel=error"],
        cwd=package, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    (listing,) = json.loads(packed.stdout)
    files = {entry["path"] for entry in listing["files"]}
    assert {"package.json", "dist/index.js", "dist/index.d.ts", "dist/client.js"} <= files
    assert not any(path.startswith(("src/", "test/", "node_modules/")) for path in files)
    tarball = tmp_path / listing["filename"]
    check = (
        "import('@shape-gateway/client').then((m) => console.log(JSON.stringify("
        "Object.keys(m).sort())))"
    )
    # From the repository path with --install-links: a copy, as from a registry, so the app and
    # the package share one @electric-sql/client (a symlink would resolve the package's own).
    for how, source in (([], str(tarball)), (["--install-links"], str(package))):
        project = tmp_path / f"app-{len(list(tmp_path.glob('app-*')))}"
        project.mkdir()
        (project / "package.json").write_text('{"name": "app", "private": true, "type": "module"}')
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error",
             *how, source],
            cwd=project, capture_output=True, text=True, check=True, timeout=180,
        )  # fmt: skip
        assert not (project / "node_modules" / "@shape-gateway" / "client").is_symlink()
        installed = project / "node_modules" / "@shape-gateway" / "client"
        assert (installed / "dist" / "index.d.ts").is_file(), source
        assert (project / "node_modules" / "@electric-sql" / "client").is_dir(), source  # peer
        exports = subprocess.run(
            [node, "-e", check], cwd=project, capture_output=True, text=True, check=True,
            timeout=60,
        ).stdout  # fmt: skip
        names = json.loads(exports)
        for name in ("createGatewayClient", "GatewayError", "indexedDbStore", "foldEvents"):
            assert name in names, (source, names)
