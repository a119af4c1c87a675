"""`shape-gateway test` as ops and CI run it: the shipped rules pass their shipped cases, a
failing case names its line, broken files read like rules problems, `--database` proves rows."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql

from deploy.demo import SEED_SQL
from gateway.cli import main
from tests.factories import SHIPPED_RULES

SHIPPED_TESTS = SHIPPED_RULES.with_name("shape_rules.test.yaml")
MEMBER_WHERE = 'where: "tenant_id = :tenant AND assigned_to = :user"'


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.fixture
def leaky(tmp_path: Path) -> Path:
    """The shipped rules and tests side by side, with members no longer held to their tasks."""
    rules = tmp_path / "shape_rules.yaml"
    rules.write_text(
        SHIPPED_RULES.read_text().replace(MEMBER_WHERE, 'where: "tenant_id = :tenant"')
    )
    shutil.copy(SHIPPED_TESTS, tmp_path / SHIPPED_TESTS.name)
    return rules


def test_the_shipped_rules_pass_their_shipped_cases_covering_every_shape_and_role(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["test", str(SHIPPED_RULES)], env={}) == 0
    out = capsys.readouterr().out
    assert re.search(r"^\d+ passed, 0 failed$", out, re.MULTILINE)
    assert "no case reads" not in out  # every (shape, role) pair has a case


def test_a_failing_case_reports_its_path_and_line_and_exits_one(
    leaky: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test", str(leaky)], env={}) == 1
    lines = capsys.readouterr().out.splitlines()
    tests = leaky.with_name("shape_rules.test.yaml")
    line = line_of(tests, "name: a member sees only the tasks assigned to it")
    assert (
        f"{tests}:{line}: a member sees only the tasks assigned to it: FAILED: where: expected "
        "a term assigned_to = 'alice', got tenant_id = 'acme'; params: expected [acme, alice], "
        "got [acme]" in lines
    )
    assert all(line.startswith(f"{tests}:") for line in lines[:-2])
    assert re.fullmatch(r"\d+ passed, [1-9]\d* failed", lines[-2])


def test_explicit_test_files_are_run_instead_of_the_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = tmp_path / "more.yaml"
    cases.write_text("cases:\n  - {identity: {user: a, tenant: acme, role: admin}, "
                     "request: tasks, refused: shape_not_allowed}\n")  # fmt: skip
    assert main(["test", str(SHIPPED_RULES), str(cases)], env={}) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{cases}:2: cases[0]: FAILED: expected refused shape_not_allowed")
    assert out[1:] == ["0 passed, 1 failed"]


def test_a_yaml_error_in_a_test_file_is_reported_like_a_rules_error_and_exits_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = tmp_path / "broken.test.yaml"
    cases.write_text("cases:\n  - name: x\n   identity: y\n")
    assert main(["test", str(SHIPPED_RULES), str(cases)], env={}) == 2
    line, source, caret = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{cases}:3: (yaml): ")
    assert (source.strip(), caret.strip()) == ("identity: y", "^")


def test_rules_that_do_not_load_are_reported_with_the_test_files_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "shape_rules.yaml"
    rules.write_text(SHIPPED_RULES.read_text().replace("roles: [admin", "roles: [admin, admin"))
    (tmp_path / "shape_rules.test.yaml").write_text("cases:\n  - {identity: x}\n")
    assert main(["test", str(rules)], env={}) == 2
    out = capsys.readouterr().out
    assert f"{rules}:" in out
    assert f"{tmp_path / 'shape_rules.test.yaml'}:2: cases[0]: needs request" in out


def test_unset_variables_in_the_rules_read_as_placeholders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "shape_rules.yaml"
    text = SHIPPED_RULES.read_text().replace(
        "shapes:", 'upstreams: {eu: {url: "${EU_URL}"}}\nshapes:'
    )
    rules.write_text(text)
    shutil.copy(SHIPPED_TESTS, tmp_path / SHIPPED_TESTS.name)
    assert main(["test", str(rules)], env={}) == 0
    assert "note: unset variables read as placeholders: EU_URL" in capsys.readouterr().out


def test_row_assertions_without_a_database_are_counted_as_unchecked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["test", str(SHIPPED_RULES)], env={}) == 0
    assert re.search(
        r"^note: \d+ cases assert rows; run with --database URL",
        capsys.readouterr().out,
        re.MULTILINE,
    )


def test_the_database_option_without_psycopg_says_how_to_install_it() -> None:
    program = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from gateway.cli import main\n"
        f"raise SystemExit(main(['test', {str(SHIPPED_RULES)!r}, '--database', 'postgresql://x']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "pip install 'shape-gateway[proof]'" in result.stderr


@pytest.fixture(scope="module")
def demo_database(database_url: str) -> Iterator[str]:
    """A fresh database holding `make demo`'s tables, named by the shipped rules."""
    name = f"gw_rulesops_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = database_url.rsplit("/", 1)[0] + "/" + name
        try:
            with psycopg.connect(url, autocommit=True) as demo:
                demo.execute(SEED_SQL.read_text())
            yield url
        finally:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.mark.postgres
def test_the_shipped_cases_hold_on_the_demo_rows(
    demo_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test", str(SHIPPED_RULES), "--database", demo_database], env={}) == 0
    out = capsys.readouterr().out
    assert re.search(r"^\d+ passed, 0 failed$", out, re.MULTILINE)
    assert "assert rows" not in out


@pytest.mark.postgres
def test_a_leaky_edit_fails_its_row_assertions_on_the_demo_rows(
    leaky: Path, demo_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test", str(leaky), "--database", demo_database], env={}) == 1
    out = capsys.readouterr().out
    assert (
        "rows_visible_only_where: 1 of 2 visible rows fail tenant_id = 'acme' AND "
        "assigned_to = 'alice'" in out
    )


def test_python_dash_m_gateway_test_runs_the_shipped_cases() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "test", "shape_rules.yaml"],
        cwd=SHIPPED_RULES.parent, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed, 0 failed" in result.stdout


def test_the_shipped_unknown_role_cases_use_a_role_no_one_would_add() -> None:
    """Adding a real role (an `auditor`, say) to the rules must not break the shipped tests."""
    cases = yaml.safe_load(SHIPPED_TESTS.read_text())["cases"]
    roles = {c["identity"]["role"] for c in cases
             if c.get("refused") == "unknown_role" and isinstance(c["identity"], dict)}  # fmt: skip
    assert roles == {"no-such-role"}
