"""The client package's harness page as a test sees it (tests/browser/harness.py): the app's
state, the requests the page made, IndexedDB, and the gateway made unreachable at will.

Like pages.py, one of the two modules of the browser tests that import Playwright (test modules
import it for type checking only).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Browser, BrowserContext, Page, Request, Route

WAIT_STEP: Final = 0.05


class HarnessPage:
    """The harness in a browser context of its own (its own IndexedDB, storage and cache)."""

    def __init__(self, browser: Browser, harness: str, gateway: str) -> None:
        self.harness, self.gateway = harness, gateway
        self.context: BrowserContext = browser.new_context()
        self.page: Page = self.context.new_page()
        self.requests: list[Request] = []
        self.console: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request))  # noqa: PLW0108
        self.page.on("console", lambda message: self.console.append(message.text))
        self.page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))

    def load(self) -> None:
        """(Re)load the page: a new run of the app, with what the browser kept."""
        self.page.goto(f"{self.harness}/")
        self.page.wait_for_function("window.appReady === true")

    def start(self, **options: Any) -> None:
        self.page.evaluate("(options) => app.start(options)", {"gateway": self.gateway, **options})

    def call(self, script: str, argument: Any = None) -> Any:
        """`script` is a function of (app, argument), awaited in the page."""
        function = f"async ([argument]) => {{ const run = {script}; return run(app, argument) }}"
        return self.page.evaluate(function, [argument])

    def wait_for(self, what: str, script: str, argument: Any = None, within: float = 5.0) -> Any:
        """Until `script` (a function of (app, argument)) returns something truthy."""
        deadline = time.monotonic() + within
        while True:
            value = self.call(script, argument)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {within} s; console: {self.console[-10:]}")
            time.sleep(WAIT_STEP)  # polling the page's state

    def wait_for_request(self, path: str, since: int = 0, within: float = 5.0) -> None:
        """Until the page has asked the gateway for `path` (after its first `since` requests)."""
        deadline = time.monotonic() + within
        while not any(urlsplit(r.url).path == path for r in self.requests[since:]):
            if time.monotonic() > deadline:
                raise AssertionError(f"no request for {path} within {within} s")
            self.page.wait_for_timeout(WAIT_STEP * 1000)

    def databases(self) -> dict[str, dict[str, list[Any]]]:
        dump: dict[str, dict[str, list[Any]]] = self.page.evaluate("app.databases()")
        return dump

    def shape_requests(self, since: int = 0, name: str = "tasks") -> list[dict[str, Any]]:
        """The page's requests for shape `name` after the first `since` requests."""
        found = []
        for request in self.requests[since:]:
            parts = urlsplit(request.url)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if parts.path == "/v1/shape" and query.get("table") == name:
                response = request.response() if request.method != "OPTIONS" else None
                found.append(
                    {
                        "query": query,
                        "tenant": request.header_value("x-tenant-id"),
                        "method": request.method,
                        "status": response.status if response is not None else None,
                    }
                )
        return [r for r in found if r["method"] != "OPTIONS"]

    def unreachable(self, path: str = "**") -> Callable[[], None]:
        """Make the gateway unreachable (`path` under it); returns the undo."""
        pattern = f"{self.gateway}/{path}"

        def abort(route: Route) -> None:
            route.abort("connectionrefused")

        self.context.route(pattern, abort)
        return lambda: self.context.unroute(pattern, abort)

    def close(self) -> None:
        self.context.close()
