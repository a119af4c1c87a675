"""A page of the demo as a test sees it: its panels, rows, local store and network.

The only module of the browser tests that imports Playwright (test modules import it for type
checking only), so a machine without it collects them and skips them with the chromium
fixture's message instead of failing to import.

Every page opens in a browser context of its own: its own storage, HTTP cache and connection
pool (a browser allows 6 HTTP/1.1 connections per origin per context, and each panel holds two
open to the gateway: its live tasks shape and its revocation feed).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final

from playwright.sync_api import Browser, BrowserContext, Page, Request, ViewportSize, expect

from tests.browser.world import Demo

# Installed before any of the page's scripts run, on every load: records every row ever put in
# the document (with its panel's person), so a row shown for a single frame is still caught.
ROW_WATCHER: Final = """
window.__rows = [];
new MutationObserver((records) => {
  for (const record of records) {
    for (const node of record.addedNodes) {
      if (!(node instanceof Element)) continue;
      const rows = node.matches("li.row") ? [node] : [...node.querySelectorAll("li.row")];
      for (const row of rows) {
        window.__rows.push({
          user: row.closest("section.panel")?.dataset.user ?? null,
          shape: row.dataset.shape, key: row.dataset.key, text: row.textContent,
        });
      }
    }
  }
}).observe(document, { childList: true, subtree: true });
"""
# Everything the page's origin keeps locally: every IndexedDB database and object store, and
# both Web Storage areas, as one JSON text.
STORAGE_DUMP: Final = """
async () => {
  const dump = {
    indexedDB: {}, localStorage: { ...localStorage }, sessionStorage: { ...sessionStorage },
  };
  const result = (request) => new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  for (const { name } of await indexedDB.databases()) {
    const db = await result(indexedDB.open(name));
    for (const store of db.objectStoreNames) {
      const everything = db.transaction(store).objectStore(store).getAll();
      dump.indexedDB[`${name}/${store}`] = await result(everything);
    }
    db.close();
  }
  return JSON.stringify(dump);
}
"""
VIEWPORT: Final = ViewportSize(width=1280, height=900)


class Tab:
    """One page of the demo in its own browser context."""

    def __init__(self, context: BrowserContext, page: Page, name: str) -> None:
        self.context, self.page, self.name = context, page, name
        self.console: list[str] = []
        self.finished: list[Request] = []
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))
        # Playwright tags each handler with an attribute, which a bound list.append cannot take.
        page.on("requestfinished", lambda request: self.finished.append(request))  # noqa: PLW0108

    def panel(self, user: str) -> Any:
        return self.page.locator(f'section.panel[data-user="{user}"]')

    def expect_state(self, user: str, state: str, timeout: float = 5.0) -> None:
        expect(self.panel(user)).to_have_attribute("data-state", state, timeout=timeout * 1000)

    def expect_text(
        self, user: str, selector: str, text: str, exact: bool = False, timeout: float = 5.0
    ) -> None:
        """The panel's element at `selector` says `text` (exactly, or among other words)."""
        found = expect(self.panel(user).locator(selector))
        if exact:
            found.to_have_text(text, timeout=timeout * 1000)
        else:
            found.to_contain_text(text, timeout=timeout * 1000)

    def expect_synced(self, user: str, timeout: float = 10.0) -> None:
        """Every shape of the panel has caught up with the gateway and is on screen (once the
        panel is there at all: right after a load, no panel has no shape behind either)."""
        shapes = self.panel(user).locator("article.shape")
        expect(shapes.first).to_be_attached(timeout=timeout * 1000)
        behind = self.panel(user).locator("article.shape:not([data-synced])")
        expect(behind).to_have_count(0, timeout=timeout * 1000)

    def titles(self, user: str, shape: str) -> list[str]:
        """What the panel shows for a shape: task titles, other rows' text."""
        rows = self.panel(user).locator(f'li.row[data-shape="{shape}"]')
        if shape == "tasks":
            rows = rows.locator(".title")
        return sorted(rows.all_inner_texts())

    def expect_task(self, user: str, title: str, timeout: float) -> None:
        task = self.panel(user).locator('li.row[data-shape="tasks"] .title', has_text=title)
        expect(task).to_have_count(1, timeout=timeout * 1000)

    def add_task(self, user: str, title: str, assigned_to: str) -> int:
        """Type a task into the panel's form; the id the demo server gave it."""
        panel = self.panel(user)
        panel.locator('input[name="title"]').fill(title)
        panel.locator('select[name="assigned_to"]').select_option(assigned_to)
        panel.locator('.add-task button[type="submit"]').click()
        note = panel.locator(".form-note")
        expect(note).to_contain_text("written", timeout=5000)
        found = re.search(r"#(\d+)", note.inner_text())
        assert found, note.inner_text()
        return int(found.group(1))

    def refetch(self, url: str, authorization: str | None) -> int:
        """The status the page's script gets for `url` now: the browser's HTTP cache answers
        if it may, else the server."""
        status: int = self.page.evaluate(
            "async ([url, authorization]) => (await fetch(url, authorization"
            " ? { headers: { Authorization: authorization } } : {})).status",
            [url, authorization],
        )
        return status

    def storage(self) -> str:
        text: str = self.page.evaluate(STORAGE_DUMP)
        return text

    def stored_rows(self, scope: str) -> list[dict[str, Any]]:
        """The rows the app keeps for `scope` (alice@acme) in IndexedDB: its store is a database
        per person and tenant (`indexedDbStore` of @shape-gateway/client)."""
        user, tenant = scope.split("@")
        dump = json.loads(self.storage())
        rows: list[dict[str, Any]] = dump["indexedDB"].get(
            f"shape-gateway-demo/{user}/{tenant}/rows", []
        )
        return rows

    def rendered(self) -> list[dict[str, Any]]:
        """Every row put in the document since the last load (ROW_WATCHER)."""
        rows: list[dict[str, Any]] = self.page.evaluate("window.__rows")
        return rows

    def bodies(self) -> list[tuple[str, bytes]]:
        """(url, body) of every response the page has received in full."""
        received = []
        for request in self.finished:
            response = request.response()
            if response is not None:
                received.append((request.url, response.body()))
        return received

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{self.name}-console.log").write_text("\n".join(self.console) + "\n")
        if not self.page.is_closed():
            self.page.screenshot(path=folder / f"{self.name}.png", full_page=True)


class Tabs:
    """The pages a test opened; saved as artifacts when it fails, closed after it."""

    def __init__(self, browser: Browser, demo: Demo) -> None:
        self.browser, self.demo = browser, demo
        self.opened: list[Tab] = []

    def open(self, users: str, cookie: bool = False, wait: bool = True) -> Tab:
        """The demo page with panels for `users` ("alice,carol"): bearer mode, or the
        same-origin cookie mode; waits until every panel is live and caught up."""
        context = self.browser.new_context(viewport=VIEWPORT)
        context.add_init_script(ROW_WATCHER)
        tab = Tab(context, context.new_page(), f"tab{len(self.opened) + 1}")
        self.opened.append(tab)
        origin = self.demo.same_origin if cookie else self.demo.app
        tab.page.goto(f"{origin}/?users={users}")
        if wait:
            for user in users.split(","):
                tab.expect_state(user, "live", timeout=10)
                tab.expect_synced(user)
        return tab

    def save(self, folder: Path) -> None:
        for tab in self.opened:
            try:
                tab.save(folder)
            except Exception as error:  # noqa: BLE001 - a broken page must not hide the failure
                (folder / f"{tab.name}-save-error.txt").write_text(repr(error))

    def close(self) -> None:
        for tab in self.opened:
            tab.context.close()
