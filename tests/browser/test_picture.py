"""The README's picture is a screenshot of this test: two people of one tenant side by side,
one just revoked, the other still syncing. `make screenshot` writes it to docs/demo.png
(SHAPE_GATEWAY_SCREENSHOT); other runs write test-artifacts/demo.png, so the scene is checked
on every run and the picture can only show what the demo does."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import ARTIFACTS

if TYPE_CHECKING:
    from tests.browser.pages import Tabs

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.redis]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_the_readme_picture_shows_two_people_side_by_side_one_revoked(tabs: Tabs) -> None:
    tab = tabs.open("alice,carol")
    tab.add_task("carol", "Oil the rocket skates", assigned_to="alice")
    tab.expect_task("alice", "Oil the rocket skates", timeout=2)
    tab.expect_task("carol", "Oil the rocket skates", timeout=2)
    tab.page.click('button[data-action="revoke"][data-target="alice"]')
    tab.expect_state("alice", "ended", timeout=2)
    tab.expect_text("alice", ".banner", "Local data deleted")
    tab.expect_state("carol", "live")
    titles = ["Order more rockets", "Test the skates", "Oil the rocket skates"]
    assert tab.titles("carol", "tasks") == sorted(titles)
    tab.page.mouse.move(0, 0)  # no hover state in the picture
    target = Path(os.environ.get("SHAPE_GATEWAY_SCREENSHOT", ARTIFACTS / "demo.png"))
    target.parent.mkdir(parents=True, exist_ok=True)
    tab.page.screenshot(path=target, full_page=True)
    assert target.read_bytes().startswith(PNG_SIGNATURE)
