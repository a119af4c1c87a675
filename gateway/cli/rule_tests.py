"""`shape-gateway test [RULES] [TESTS...]`: run rule test cases through the serving planner.

Exit 0 when every case passed, 1 when any failed, 2 when nothing could be judged: the rules or
a test file did not load (each problem as `PATH:LINE: key: message`), or `--database` could not
be used.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

from gateway.cli.inputs import (
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_USAGE,
    Commands,
    default_upstream,
    settings_or_report,
)
from gateway.rules.load import Problem, RulesError, load_rules
from gateway.rulesops.cases import load_cases
from gateway.rulesops.environment import PlaceholderEnv
from gateway.rulesops.model import Allowed, Case
from gateway.rulesops.proof import ProofUnavailableError, prove
from gateway.rulesops.report import case_lines
from gateway.rulesops.runner import run_cases, untested_pairs


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "test",
        help="run rule test cases (who must and must not see what)",
        description="Run table-driven rule test cases through the planner that serves traffic.",
    )
    parser.add_argument("rules", nargs="?", help="rules file (default: GATEWAY_RULES)")
    parser.add_argument(
        "tests", nargs="*", help="test files (default: RULES with .test before its suffix)"
    )
    parser.add_argument(
        "--database",
        metavar="URL",
        help="also run each allowed case's query in this PostgreSQL, read only, and check its "
        "row assertions (needs the `proof` extra)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")
    parser.set_defaults(run=run)


def default_tests_path(rules: str) -> str:
    """`shape_rules.yaml` -> `shape_rules.test.yaml`, beside it."""
    path = Path(rules)
    return str(path.with_name(f"{path.stem}.test{path.suffix or '.yaml'}"))


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings = settings_or_report(env, sys.stderr)
    if settings is None:
        return EXIT_USAGE
    rules_path = args.rules or settings.rules_path
    tests = args.tests or [default_tests_path(rules_path)]
    placeholders = PlaceholderEnv(env)
    problems: list[Problem] = []
    try:
        rules = load_rules(
            rules_path, env=placeholders, default_upstream=default_upstream(settings)
        )
    except RulesError as error:
        problems += error.problems
    cases: list[Case] = []
    for path in tests:
        try:
            cases += load_cases(path)
        except RulesError as error:
            problems += error.problems
    if problems:
        for problem in problems:
            print(problem)
        return EXIT_USAGE
    results = run_cases(cases, rules)
    asserting = sum(isinstance(c.expect, Allowed) and c.expect.asserts_rows for c in cases)
    if args.database:
        try:
            results = prove(results, args.database)
        except ProofUnavailableError as error:
            print(f"test: {error}", file=sys.stderr)
            return EXIT_USAGE
        asserting = 0
    lines = case_lines(
        results,
        verbose=args.verbose,
        untested=untested_pairs(results, rules) if not args.tests else (),
        unproved=asserting,
    )
    if placeholders.missing:
        unset = ", ".join(sorted(placeholders.missing))
        lines.append(f"note: unset variables read as placeholders: {unset}")
    print("\n".join(lines))
    return EXIT_OK if all(result.passed for result in results) else EXIT_PROBLEM
