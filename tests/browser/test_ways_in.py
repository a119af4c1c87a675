"""The two ways a browser reaches the gateway, both through the stock client.

Bearer, cross-origin: the page (the demo server's origin) sends `Authorization: Bearer` to the
gateway on another port; CORS must let the script read Electric's headers, the request id, the
challenge and the JSON of a refusal. Cookie, same-origin: the gateway is reverse-proxied under
`/as/USER/v1/*` on the page's own origin and an HttpOnly, SameSite=Lax cookie carries the token,
which the script never sees; shapes, writes and the revocation feed all work through it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    from tests.browser.pages import Tabs

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.redis]

# What the page's own script reads from the gateway on another origin (exposed headers only).
READ_ACROSS_ORIGINS: Final = """
async (gateway) => {
  const token = JSON.parse(sessionStorage.getItem("demo:bearer:alice")).token;
  const read = async (path, headers) => {
    const response = await fetch(new URL(path, gateway), { headers });
    const seen = Object.fromEntries([
      "electric-handle", "electric-offset", "electric-schema", "electric-up-to-date",
      "x-request-id", "www-authenticate", "cache-control",
    ].map((name) => [name, response.headers.get(name)]));
    return { status: response.status, headers: seen, body: await response.json() };
  };
  const auth = { Authorization: `Bearer ${token}` };
  return {
    shape: await read("/v1/shape?table=tasks&offset=-1", auth),
    unknown: await read("/v1/shape?table=salaries&offset=-1", auth),
    anonymous: await read("/v1/shape?table=tasks&offset=-1", {}),
  };
}
"""


def test_cross_origin_the_page_reads_electric_headers_and_refusals(tabs: Tabs) -> None:
    tab = tabs.open("alice")
    assert urlsplit(tab.page.url).netloc != urlsplit(tabs.demo.gateway).netloc
    # The stock client read what it needs (it stops on missing headers), and so did the app.
    wire = tab.panel("alice").locator('article[data-shape="tasks"] .wire')
    for name in ("data-handle", "data-offset", "data-request-id"):
        assert wire.get_attribute(name), name
    seen: dict[str, Any] = tab.page.evaluate(READ_ACROSS_ORIGINS, tabs.demo.gateway)
    shape = seen["shape"]
    assert shape["status"] == 200
    assert all(shape["headers"][n] for n in ("electric-handle", "electric-offset", "x-request-id"))
    assert "assigned_to" in shape["headers"]["electric-schema"]
    assert shape["headers"]["cache-control"] == "private, no-cache"
    unknown = seen["unknown"]
    assert (unknown["status"], unknown["body"]["error"]) == (404, "unknown_shape")
    assert unknown["headers"]["x-request-id"]
    anonymous = seen["anonymous"]
    assert (anonymous["status"], anonymous["body"]["error"]) == (401, "missing_token")
    assert anonymous["headers"]["www-authenticate"].startswith("Bearer")


def test_same_origin_an_http_only_cookie_carries_syncs_writes_and_revocations(
    tabs: Tabs,
) -> None:
    tab = tabs.open("alice,bob", cookie=True)
    assert tab.titles("alice", "tasks") == ["Test the skates"]
    assert tab.titles("bob", "tasks") == ["Hire henchmen"]
    cookies = {c["path"]: c for c in tab.context.cookies() if c["name"] == "demo_session"}
    assert set(cookies) == {"/as/alice/", "/as/bob/"}  # one per person, side by side
    assert all(c["httpOnly"] and c["sameSite"] == "Lax" for c in cookies.values())
    assert "demo_session" not in tab.page.evaluate("document.cookie")  # out of the script's reach
    shape_requests = [r for r in tab.finished if "/v1/shape" in r.url]
    assert shape_requests
    for request in shape_requests:
        assert request.url.startswith(f"{tabs.demo.same_origin}/as/")
        assert request.header_value("authorization") is None
    # A write, signed by the cookie, arrives live through the proxied long-poll.
    tab.add_task("alice", "Sharpen the skates", assigned_to="alice")
    tab.expect_task("alice", "Sharpen the skates", timeout=2)
    # A revocation arrives through the proxied SSE feed, unbuffered.
    tab.page.click('button[data-action="revoke"][data-target="bob"]')
    tab.expect_state("bob", "ended", timeout=2)
    assert tab.stored_rows("bob@globex") == []
    tab.expect_text("bob", ".activity", "feed: membership.revoked")
    tab.expect_state("alice", "live")
