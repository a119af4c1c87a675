"""The live rules: every reload logs how it ended, so the last line about the rules is the truth."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from gateway.rules.watch import RulesHolder
from tests.factories import DEFAULT_UPSTREAM, RULES_YAML


def holder_for(tmp_path: Path) -> RulesHolder:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES_YAML)
    return RulesHolder.load(str(path), {}, DEFAULT_UPSTREAM)


def reload_events(holder: RulesHolder) -> list[tuple[str, bool | None]]:
    with capture_logs() as logs:
        holder.reload("sighup")
    return [(e["event"], e.get("changed")) for e in logs if e["event"].startswith("rules_")]


def test_a_reload_of_unchanged_rules_says_so(tmp_path: Path) -> None:
    holder = holder_for(tmp_path)
    assert reload_events(holder) == [("rules_unchanged", False)]


def test_a_reload_of_changed_rules_says_so(tmp_path: Path) -> None:
    holder = holder_for(tmp_path)
    Path(holder.path).write_text(
        RULES_YAML.replace("[admin, manager, member]", "[admin, manager, member, guest]")
    )
    assert reload_events(holder) == [("rules_reloaded", True)]


def test_restoring_the_file_after_a_failed_reload_logs_the_recovery(tmp_path: Path) -> None:
    holder = holder_for(tmp_path)
    Path(holder.path).write_text(RULES_YAML.replace(":tenant", ":tenat"))
    assert reload_events(holder) == [("rules_reload_failed", None)]
    Path(holder.path).write_text(RULES_YAML)  # the file as it was: the active rules again
    assert reload_events(holder) == [("rules_reload_recovered", False)]
    assert holder.last_error == ()
    assert reload_events(holder) == [("rules_unchanged", False)]
