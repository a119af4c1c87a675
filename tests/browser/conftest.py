"""The demo web app in a real browser: `make demo`'s own processes, driven by Chromium.

One `python -m deploy.demo` for the package (the demo server, our Electric-protocol upstream
on a database of its own, the gateway with Redis), started exactly as `make demo` starts it,
on free ports. One headless Chromium (Debian's `chromium`, driven by Playwright for Python;
never a downloaded browser) for the package; every test gets fresh browser contexts (their own
storage, HTTP cache and connection pools). After each test the demo world is put back: people
restored, tenants reinstated, added tasks deleted.

A failing test leaves, under `test-artifacts/<test>/`, a screenshot and the console log of every
page it opened, and the demo's output.

Needs Chromium (`apt-get install chromium`, or CHROMIUM=/path/to/chrome), the `playwright`
Python package (the dev extra) and the page's npm packages (`make npm`: the client package
built, `deploy/web`'s installed); without them these tests skip locally and fail under CI.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final

import psycopg
import pytest
import redis
from psycopg import sql

from deploy.webdemo.app import INSTALL_HINT, installed
from tests.browser.world import Demo
from tests.requirements import unavailable

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from tests.browser.pages import Tabs

ROOT: Final = Path(__file__).resolve().parent.parent.parent
ARTIFACTS: Final = ROOT / "test-artifacts"
# This machine (and CI) refuses Chromium's own connections to Google: without the background
# networking flags it waits on them. QUIC off: everything here is plain HTTP/1.1 on loopback.
CHROMIUM_ARGS: Final = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip
START_TIMEOUT: Final = 60.0
REPORTS: Final = pytest.StashKey[dict[str, pytest.TestReport]]()


def chromium_path() -> str | None:
    """$CHROMIUM when set (only it), else Debian's /usr/bin/chromium or `chromium` on PATH."""
    chosen = os.environ.get("CHROMIUM")
    candidates = [chosen] if chosen else ["/usr/bin/chromium", shutil.which("chromium")]
    return next((c for c in candidates if c and Path(c).is_file()), None)


@pytest.fixture(scope="package")
def chromium() -> str:
    """Everything the browser tests need on this machine, or a skip saying what to install."""
    path = chromium_path()
    if path is None:
        unavailable(
            "browser",
            f"no Chromium at CHROMIUM={os.environ['CHROMIUM']}"
            if os.environ.get("CHROMIUM")
            else "Chromium is not installed: `apt-get install chromium` (Debian, Ubuntu), or set "
            "CHROMIUM=/path/to/chrome",
        )
    if importlib.util.find_spec("playwright") is None:
        unavailable(
            "browser",
            "the playwright package is missing: `pip install -e '.[dev]'` (`make test` does)",
        )
    if not installed():
        unavailable(
            "browser",
            "the demo web app's npm packages are not installed: "
            f"`{INSTALL_HINT}` (`make test` does when npm is on PATH)",
        )
    return path


def _tail(path: Path, lines: int = 40) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(no output)"
    return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="package")
def demo(
    chromium: str, database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Demo]:
    name = f"gw_browser_{uuid.uuid4().hex[:10]}"
    prefix = f"gw-browser-{uuid.uuid4().hex[:10]}"
    log = tmp_path_factory.mktemp("demo") / "demo.log"
    environment = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url}
    args = [
        sys.executable, "-m", "deploy.demo", "--database", name, "--redis-prefix", prefix,
        "--electric-port", "0", "--gateway-port", "0", "--web-port", "0",
        "--same-origin-port", "0",
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(
            args, cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT
        )
    database = database_url.rsplit("/", 1)[0] + "/" + name
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while "Running; Ctrl-C to stop" not in (text := log.read_text(errors="replace")):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"make demo did not start:\n{_tail(log)}", pytrace=False)
            time.sleep(0.1)  # polling another process's output file
        found = {
            key: re.search(pattern, text)
            for key, pattern in (
                ("app", r"Open the demo:\s+(\S+?)/?\s"),
                ("same_origin", r"Same origin:\s+(\S+?)/?\s"),
                ("gateway", r"gateway:\s+(\S+)"),
            )
        }
        urls = {key: match.group(1) for key, match in found.items() if match}
        assert len(urls) == 3, f"the demo did not print its URLs:\n{text}"
        yield Demo(**urls, database=database, log=log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        client = redis.Redis.from_url(redis_url)
        with contextlib.closing(client):
            assert not list(client.scan_iter(match=f"{prefix}:*")), "the demo left Redis keys"


@pytest.fixture(scope="package")
def browser(chromium: str) -> Iterator[Browser]:
    """One headless Chromium for the package. Playwright gives it a fresh, temporary user data
    directory; each test's contexts are fresh profiles within it."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - optional dependency

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, args=list(CHROMIUM_ARGS), headless=True
        )
        yield launched
        launched.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so a fixture's teardown knows the test failed."""
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


def _failed(item: pytest.Item) -> bool:
    return any(report.failed for report in item.stash.get(REPORTS, {}).values())


@pytest.fixture
def tabs(browser: Browser, demo: Demo, request: pytest.FixtureRequest) -> Iterator[Tabs]:
    """Opens pages, each in a browser context of its own; keeps what a failure needs."""
    from tests.browser.pages import Tabs  # noqa: PLC0415 - imports playwright

    opened = Tabs(browser, demo)
    try:
        yield opened
    finally:
        if _failed(request.node):
            folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.nodeid)
            opened.save(folder)
            shutil.copy(demo.log, folder / "demo.log")
        opened.close()
        demo.reset()
