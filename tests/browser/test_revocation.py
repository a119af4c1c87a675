"""When access ends, the browser lets go: the panel stops its shapes and deletes its local
data within two seconds, told by the gateway's `/v1/events` feed, and a reload shows nothing of
what was revoked, not even for a frame: not from the local store, not from the HTTP cache."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Response

    from tests.browser.pages import Tab, Tabs

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.redis]

CLEARED_WITHIN: Final = 2.0  # seconds from the admin's click to an empty panel and store


def click_admin(tab: Tab, action: str, target: str) -> float:
    """Click the admin view's button; when it was clicked."""
    started = time.monotonic()
    tab.page.click(f'button[data-action="{action}"][data-target="{target}"]')
    return started


def expect_cleared(tab: Tab, user: str, tenant: str, code: str, started: float) -> None:
    tab.expect_state(user, "ended", timeout=CLEARED_WITHIN)
    assert tab.panel(user).locator("li.row").count() == 0
    assert tab.stored_rows(f"{user}@{tenant}") == []
    assert time.monotonic() - started < CLEARED_WITHIN
    tab.expect_text(user, ".banner .code", code, exact=True)


def expect_told_by_feed(tab: Tab, user: str, event: str) -> None:
    tab.expect_text(user, ".activity", f"feed: {event}", timeout=CLEARED_WITHIN)


def test_revoking_a_membership_clears_the_panel_and_the_local_store(tabs: Tabs) -> None:
    tab = tabs.open("alice,carol")
    assert tab.stored_rows("alice@acme")  # there is something to delete
    started = click_admin(tab, "revoke", "alice")
    expect_cleared(tab, "alice", "acme", "access_revoked", started)
    expect_told_by_feed(tab, "alice", "membership.revoked alice@acme")
    # carol, in the same tenant and the same browser, keeps hers.
    tab.expect_state("carol", "live")
    assert tab.titles("carol", "tasks") == ["Order more rockets", "Test the skates"]
    assert tab.stored_rows("carol@acme")
    # Restored, she signs in again: the app issues a token after the revocation's second.
    click_admin(tab, "restore", "alice")
    tab.panel("alice").get_by_role("button", name="Sign in again").click()
    tab.expect_synced("alice")
    assert tab.titles("alice", "tasks") == ["Test the skates"]


def test_suspending_a_tenant_clears_its_panels_and_reinstating_brings_them_back(
    tabs: Tabs,
) -> None:
    acme, globex = tabs.open("alice,carol"), tabs.open("bob")
    started = click_admin(acme, "suspend", "acme")
    for user in ("alice", "carol"):
        expect_cleared(acme, user, "acme", "tenant_suspended", started)
        expect_told_by_feed(acme, user, "tenant.suspended @acme")
    globex.expect_state("bob", "live")
    assert globex.titles("bob", "tasks") == ["Hire henchmen"]
    # The feeds end with the suspension and are asked for again until admitted: reinstating
    # restarts the panels by itself (the reinstatement replayed after the saved event id).
    click_admin(acme, "reinstate", "acme")
    for user in ("alice", "carol"):
        acme.expect_state(user, "live")
        acme.expect_synced(user)
    assert acme.titles("alice", "tasks") == ["Test the skates"]


@pytest.mark.parametrize("cookie", [False, True], ids=["bearer-cross-origin", "cookie-same-origin"])
def test_a_reload_after_revocation_shows_no_revoked_row_not_even_briefly(
    tabs: Tabs, cookie: bool
) -> None:
    tab = tabs.open("alice,carol", cookie=cookie)
    snapshot = primed_snapshot(tab, "alice", cookie)
    started = click_admin(tab, "revoke", "alice")
    expect_cleared(tab, "alice", "acme", "access_revoked", started)
    answers: list[Response] = []
    tab.page.on("response", lambda response: answers.append(response))  # noqa: PLW0108 - see pages
    tab.page.reload()
    tab.expect_synced("carol")
    tab.expect_state("alice", "ended")
    # The refusal's own JSON, read by the page (cross-origin: through CORS).
    message = "your access to tenant 'acme' was revoked; delete its local data"
    tab.expect_text("alice", ".banner .message", message, exact=True)
    # Watched from the first paint on: not one of alice's rows was ever in the document.
    assert [row for row in tab.rendered() if row["user"] == "alice"] == []
    assert len([row for row in tab.rendered() if row["user"] == "carol"]) >= 2
    # What reached her shape requests came from the gateway, refusing, never from the cache;
    # and the browser's cache no longer answers her snapshot by itself.
    hers = [r for r in answers if "/v1/shape" in r.url and asked_by(tab, r, "alice", cookie)]
    assert {r.status for r in hers} <= {403}
    assert tab.refetch(snapshot, authorization(tab, "alice", cookie)) == 403


@pytest.mark.parametrize("cookie", [False, True], ids=["bearer-cross-origin", "cookie-same-origin"])
def test_a_revocation_while_the_page_was_away_shows_nothing_when_it_comes_back(
    tabs: Tabs, cookie: bool
) -> None:
    tab = tabs.open("alice,carol", cookie=cookie)
    snapshot = primed_snapshot(tab, "alice", cookie)
    url = tab.page.url
    tab.page.goto("about:blank")  # the tab stays (its session too); the app is gone
    tabs.demo.admin("revoke", user="alice")
    tab.page.goto(url)
    tab.expect_synced("carol")
    tab.expect_state("alice", "ended")
    # Her rows were still in the local store and the HTTP cache: neither was shown, and the
    # store is empty now.
    assert [row for row in tab.rendered() if row["user"] == "alice"] == []
    assert tab.stored_rows("alice@acme") == []
    assert tab.refetch(snapshot, authorization(tab, "alice", cookie)) == 403


def primed_snapshot(tab: Tab, user: str, cookie: bool) -> str:
    """The URL of the user's tasks snapshot (what a fresh start asks for again), fetched once
    more by the page's script, so the browser's HTTP cache surely holds a complete answer
    (the stock client's own requests may be cut short by its prefetching)."""
    for request in tab.finished:
        response = request.response()
        if (
            "/v1/shape" in request.url
            and "table=tasks" in request.url
            and "offset=-1" in request.url
            and response is not None
            and asked_by(tab, response, user, cookie)
        ):
            assert tab.refetch(request.url, authorization(tab, user, cookie)) == 200
            return request.url
    raise AssertionError(f"{user} never asked for a tasks snapshot")


def authorization(tab: Tab, user: str, cookie: bool) -> str | None:
    if cookie:
        return None  # the cookie goes along by itself
    token: str = tab.page.evaluate(
        f"JSON.parse(sessionStorage.getItem('demo:bearer:{user}')).token"
    )
    return f"Bearer {token}"


def asked_by(tab: Tab, response: Response, user: str, cookie: bool) -> bool:
    if cookie:
        return f"/as/{user}/" in response.url
    return response.request.header_value("authorization") == authorization(tab, user, cookie)


def test_a_user_still_revoked_when_the_tenant_returns_is_not_told_the_reinstatement_did_it(
    tabs: Tabs,
) -> None:
    """The panel times a deletion from the admin's click only when that click ended access: a
    reinstatement restores no one still revoked, and deletes nothing."""
    tab = tabs.open("alice,carol")
    click_admin(tab, "suspend", "acme")
    tab.expect_state("alice", "ended", timeout=CLEARED_WITHIN)
    click_admin(tab, "revoke", "alice")
    click_admin(tab, "reinstate", "acme")
    tab.expect_state("carol", "live")
    tab.panel("alice").get_by_role("button", name="Try again").click()
    tab.expect_text("alice", ".banner .code", "access_revoked", exact=True)
    banner = tab.panel("alice").locator(".banner").inner_text()
    assert "Local data deleted" in banner
    assert "Reinstate" not in banner
