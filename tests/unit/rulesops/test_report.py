"""What `test` and `diff` print: failures with their location, then the summary and notes."""

from __future__ import annotations

from gateway.rulesops.cases import parse_cases
from gateway.rulesops.diff import Change, Kind
from gateway.rulesops.report import case_lines, diff_lines
from gateway.rulesops.runner import run_cases
from tests.factories import make_rules

CASES = """\
cases:
  - name: admin reads tasks
    identity: {user: a, tenant: acme, role: admin}
    request: tasks
    allowed: {min_rows: 1}
  - name: member is refused org notes
    identity: {user: a, tenant: acme, role: member}
    request: org_notes
    refused: unknown_shape
"""


def test_a_failure_is_one_line_with_its_location_and_the_summary_follows() -> None:
    results = run_cases(parse_cases(CASES, path="t.yaml"), make_rules())
    assert case_lines(results) == [
        "t.yaml:6: member is refused org notes: FAILED: expected refused unknown_shape, got "
        "refused 403 shape_not_allowed (role 'member' may not read shape 'org_notes')",
        "1 passed, 1 failed",
    ]


def test_verbose_lists_passing_cases_and_notes_say_what_was_not_checked() -> None:
    results = run_cases(parse_cases(CASES, path="t.yaml"), make_rules())
    lines = case_lines(results, verbose=True, untested=[("drafts", "admin")], unproved=1)
    assert lines[0] == "t.yaml:2: admin reads tasks: passed"
    assert lines[-2:] == [
        "note: no case reads these shapes as these roles: drafts (admin)",
        "note: 1 case asserts rows; run with --database URL to check them",
    ]


def test_a_diff_without_changes_says_so_and_one_with_changes_ends_with_the_counts() -> None:
    assert diff_lines([]) == ["no change in access or limits"]
    change = Change(Kind.NARROWING, "tasks", "access", "now refused", roles=("admin", "member"))
    assert diff_lines([change]) == [
        "narrowed tasks (admin, member): now refused",
        "0 widenings, 1 narrowing, 0 limit changes: no access widened",
    ]
