"""A missing tool skips its tests locally, saying what to install, and fails them under CI."""

from __future__ import annotations

import pytest

from tests import requirements


@pytest.fixture
def nothing_skipped_yet(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A fresh record, so these tests do not mark the real session as having skipped."""
    skipped: list[str] = []
    monkeypatch.setattr(requirements, "skipped", skipped)
    return skipped


def test_locally_a_missing_tool_skips_with_what_to_install(
    monkeypatch: pytest.MonkeyPatch, nothing_skipped_yet: list[str]
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install chromium"):
        requirements.unavailable("browser", "Chromium is not installed: `apt-get install chromium`")
    assert nothing_skipped_yet == ["browser"]


def test_under_ci_a_missing_tool_fails_the_test(
    monkeypatch: pytest.MonkeyPatch, nothing_skipped_yet: list[str]
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"CI must run every browser test"):
        requirements.unavailable("browser", "Chromium is not installed")
    assert nothing_skipped_yet == []
