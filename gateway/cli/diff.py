"""`shape-gateway diff OLD NEW`: what an edit of the rules changes in access, not in text.

Exit 0 when no access widened (nothing changed, or only narrowings and limits), 2 when any
access widened (so CI can ask for a second approval), 1 when a file did not load or the command
was misused. `-` reads a file from stdin: `git show main:shape_rules.yaml | shape-gateway diff -
shape_rules.yaml`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Final

from gateway.cli.inputs import EXIT_OK, EXIT_PROBLEM, Commands, default_upstream, settings_or_report
from gateway.rules.load import Problem, RulesError, load_rules, parse_rules
from gateway.rules.model import Rules, Upstream
from gateway.rulesops.diff import diff_rules, widened
from gateway.rulesops.environment import PlaceholderEnv
from gateway.rulesops.report import diff_json, diff_lines

EXIT_WIDENED: Final = 2
STDIN: Final = "-"


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "diff",
        help="compare two rules files by the access they grant",
        description="Compare two rules files by effect. Exit 0: no access widened; 2: access "
        "widened; 1: a file did not load.",
        usage_exit=EXIT_PROBLEM,
    )
    parser.add_argument("old", help="the rules before the edit (- for stdin)")
    parser.add_argument("new", help="the rules after the edit (- for stdin)")
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="text (default) or JSON"
    )
    parser.set_defaults(run=run)


def _load(path: str, env: Mapping[str, str], default: Upstream) -> Rules:
    if path != STDIN:
        return load_rules(path, env=env, default_upstream=default)
    try:
        text = sys.stdin.read()
    except (OSError, UnicodeDecodeError) as error:
        raise RulesError([Problem("<stdin>", 1, "(file)", f"cannot be read: {error}")]) from None
    return parse_rules(text, path="<stdin>", env=env, default_upstream=default)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    if args.old == STDIN and args.new == STDIN:
        print("diff: only one of OLD and NEW can be read from stdin (-)", file=sys.stderr)
        return EXIT_PROBLEM
    settings = settings_or_report(env, sys.stderr)
    if settings is None:
        return EXIT_PROBLEM
    placeholders = PlaceholderEnv(env)  # the same environment for both sides
    loaded: list[Rules] = []
    for path in (args.old, args.new):
        try:
            loaded.append(_load(path, placeholders, default_upstream(settings)))
        except RulesError as error:
            for problem in error.problems:
                print(problem, file=sys.stderr)
    if len(loaded) != 2:
        return EXIT_PROBLEM
    changes = diff_rules(*loaded)
    notes = []
    if placeholders.missing:
        unset = ", ".join(sorted(placeholders.missing))
        notes.append(f"unset variables read as placeholders: {unset}")
    if args.format == "json":
        print(diff_json(changes, old=args.old, new=args.new, notes=notes))
    else:
        print("\n".join(diff_lines(changes) + [f"note: {note}" for note in notes]))
    return EXIT_WIDENED if widened(changes) else EXIT_OK
