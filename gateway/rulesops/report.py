"""What `test` and `diff` print: one line per failing case or per change, then a summary.

Kept apart from the commands so the same lines reach a terminal, a CI log or a test, and from
the logic so wording changes never touch a decision.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Final

from gateway.rulesops.diff import Change, Kind
from gateway.rulesops.runner import CaseResult

_LABEL: Final = {Kind.WIDENING: "WIDENED ", Kind.NARROWING: "narrowed", Kind.LIMITS: "limits  "}


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def case_lines(
    results: Sequence[CaseResult],
    *,
    verbose: bool = False,
    untested: Sequence[tuple[str, str]] = (),
    unproved: int = 0,
) -> list[str]:
    """pytest's shape: a line per failure (`PATH:LINE: name: what differs`), the summary, then
    notes on what was not checked."""
    lines = []
    for result in results:
        name = result.case.name
        if not result.passed:
            lines.append(f"{result.case.location}: {name}: FAILED: {'; '.join(result.mismatches)}")
        elif verbose:
            rows = f" ({_plural(result.rows, 'row')})" if result.rows is not None else ""
            lines.append(f"{result.case.location}: {name}: passed{rows}")
    failed = sum(not result.passed for result in results)
    lines.append(f"{len(results) - failed} passed, {failed} failed")
    if untested:
        pairs = ", ".join(f"{shape} ({role})" for shape, role in untested)
        lines.append(f"note: no case reads these shapes as these roles: {pairs}")
    if unproved:
        verb = "asserts" if unproved == 1 else "assert"
        lines.append(
            f"note: {_plural(unproved, 'case')} {verb} rows; run with --database URL to check them"
        )
    return lines


def diff_lines(changes: Sequence[Change]) -> list[str]:
    """Widenings first, each marked; then narrowings and limits; then the count of each."""
    if not changes:
        return ["no change in access or limits"]
    lines = []
    for change in changes:
        who = f" ({', '.join(change.roles)})" if change.roles else ""
        lines.append(f"{_LABEL[change.kind]} {change.subject}{who}: {change.message}")
    counts = {kind: sum(change.kind is kind for change in changes) for kind in Kind}
    summary = ", ".join(
        [
            _plural(counts[Kind.WIDENING], "widening"),
            _plural(counts[Kind.NARROWING], "narrowing"),
            _plural(counts[Kind.LIMITS], "limit change"),
        ]
    )
    verdict = "access WIDENED" if counts[Kind.WIDENING] else "no access widened"
    lines.append(f"{summary}: {verdict}")
    return lines


def diff_json(changes: Sequence[Change], *, old: str, new: str, notes: Sequence[str]) -> str:
    document = {
        "old": old,
        "new": new,
        "widened": any(change.kind is Kind.WIDENING for change in changes),
        "changes": [dataclasses.asdict(change) for change in changes],
        "notes": list(notes),
    }
    return json.dumps(document, indent=2)
