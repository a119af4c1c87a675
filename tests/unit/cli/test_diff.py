"""`shape-gateway diff` as a pull request check runs it: exit 2 on any widening, 0 otherwise,
1 when it cannot judge; `-` reads one side from stdin; `--format json` for tools."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from tests.factories import SHIPPED_RULES

MEMBER = """\
        where: "tenant_id = :tenant AND assigned_to = :user"
        columns: [id, tenant_id, project_id, title, status, assigned_to]"""


def edited(tmp_path: Path, before: str, after: str) -> Path:
    text = SHIPPED_RULES.read_text()
    assert before in text
    path = tmp_path / "shape_rules.yaml"
    path.write_text(text.replace(before, after))
    return path


@pytest.fixture
def widened(tmp_path: Path) -> Path:
    """The realistic edit: members gain a column and lose their `assigned_to = :user` term."""
    return edited(
        tmp_path,
        MEMBER,
        '        where: "tenant_id = :tenant"\n'
        "        columns: [id, tenant_id, project_id, title, status, assigned_to, internal_notes]",
    )


def test_identical_rules_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(SHIPPED_RULES), str(SHIPPED_RULES)], env={}) == 0
    assert capsys.readouterr().out == "no change in access or limits\n"


def test_a_widening_edit_exits_two_and_lists_each_widening_first(
    widened: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["diff", str(SHIPPED_RULES), str(widened)], env={}) == 2
    assert capsys.readouterr().out.splitlines() == [
        "WIDENED  tasks (member): where lost assigned_to = :user",
        "WIDENED  tasks (member): columns added: internal_notes",
        "2 widenings, 0 narrowings, 0 limit changes: access WIDENED",
    ]


def test_the_reverse_edit_only_narrows_and_exits_zero(
    widened: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["diff", str(widened), str(SHIPPED_RULES)], env={}) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "narrowed tasks (member): where gained assigned_to = :user"
    assert out[-1] == "0 widenings, 2 narrowings, 0 limit changes: no access widened"


def test_a_limits_change_alone_is_reported_and_exits_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raised = edited(tmp_path, "{requests_per_minute: 600,", "{requests_per_minute: 900,")
    assert main(["diff", str(SHIPPED_RULES), str(raised)], env={}) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "limits   limits.default.requests_per_minute: 600 -> 900"
    )


def test_json_format_gives_every_change_with_its_kind(
    widened: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["diff", str(SHIPPED_RULES), str(widened), "--format", "json"], env={}) == 2
    document = json.loads(capsys.readouterr().out)
    assert document["widened"] is True
    assert [(c["kind"], c["subject"], c["aspect"], c["roles"]) for c in document["changes"]] == [
        ("widening", "tasks", "where", ["member"]),
        ("widening", "tasks", "columns", ["member"]),
    ]
    assert document["changes"][0]["removed"] == ["assigned_to = :user"]


def test_a_file_that_does_not_load_exits_one_with_its_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = edited(tmp_path, ":tenant AND assigned_to", ":tenat AND assigned_to")
    assert main(["diff", str(SHIPPED_RULES), str(broken)], env={}) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"{broken}:")
    assert "unknown placeholder :tenat" in captured.err


def test_a_usage_error_exits_one_not_two(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["diff", str(SHIPPED_RULES)], env={})
    assert exited.value.code == 1
    assert "the following arguments are required: new" in capsys.readouterr().err


def test_both_sides_from_stdin_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "-", "-"], env={}) == 1
    assert "only one of OLD and NEW" in capsys.readouterr().err


def run_with_stdin(old: str, new: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "diff", old, new],
        input=stdin, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_dash_reads_the_old_rules_from_stdin_as_git_show_would_pipe_them(widened: Path) -> None:
    result = run_with_stdin("-", str(widened), SHIPPED_RULES.read_text())
    assert result.returncode == 2, result.stderr
    assert (
        result.stdout.splitlines()[0] == "WIDENED  tasks (member): where lost assigned_to = :user"
    )


def test_a_problem_in_rules_from_stdin_names_stdin(tmp_path: Path) -> None:
    result = run_with_stdin(str(SHIPPED_RULES), "-", "version: 2\n")
    assert result.returncode == 1
    assert result.stderr.startswith("<stdin>:1: ")


def test_unset_variables_read_as_the_same_placeholder_on_both_sides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = edited(tmp_path, "shapes:", 'upstreams: {eu: {url: "${EU_URL}"}}\nshapes:')
    assert main(["diff", str(rules), str(rules)], env={}) == 0
    assert capsys.readouterr().out.splitlines() == [
        "no change in access or limits",
        "note: unset variables read as placeholders: EU_URL",
    ]
