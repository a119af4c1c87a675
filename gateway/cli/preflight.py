"""What `serve` and `check` verify before they act: the settings, the token keys (`serve`) and the
rules, every problem of all three collected and printed in one run, so an operator fixes a
deployment in one pass instead of learning of a bad port, a short JWT_SECRET and an unreadable
rules file one restart at a time.

Settings and key problems exit 2 (the command was misconfigured), rules problems alone exit 1.
With a database (`check --database`, GATEWAY_CHECK_DATABASE), the rules' tables and columns are
checked against its schema too, and a mismatch is a rules problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TextIO

from gateway.auth.keys import KeyConfigError
from gateway.cli.inputs import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, default_upstream
from gateway.rules.load import Problem, RulesError, load_rules
from gateway.rules.model import Rules
from gateway.rulesops.proof import ProofUnavailableError
from gateway.rulesops.schema import check_schema
from gateway.settings import Settings, SettingsError, load_settings
from gateway.web.setups import static_keys

NO_KEY_SOURCE = (
    "no JWT key source is configured; set JWT_SECRET (HS256), JWT_PUBLIC_KEY (PEM or path) "
    "or JWT_JWKS_URL"
)


@dataclass
class Preflight:
    settings: Settings | None = None  # None only when nothing could be read at all
    rules: Rules | None = None
    configuration: list[str] = field(default_factory=list)  # settings and key problems
    rules_problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    schema_checked: int | None = None  # shapes checked against a database, when one was given

    @property
    def exit_code(self) -> int:
        if self.configuration:
            return EXIT_USAGE
        return EXIT_PROBLEM if self.rules_problems else EXIT_OK


def run_preflight(
    env: Mapping[str, str],
    *,
    keys: bool,
    rules_path: str | None = None,
    database: str | None = None,
    **overrides: object,
) -> Preflight:
    """Read the settings (`rules_path` and `overrides` from flags win), check the keys when
    `keys`, load the rules: every problem kept."""
    found = Preflight()
    try:
        found.settings = load_settings(env, rules_path=rules_path, **overrides)
    except SettingsError as error:
        found.configuration += error.problems
        found.settings = error.partial
    settings = found.settings
    if settings is None:
        return found
    if keys:
        if not settings.has_key_source:
            found.configuration.append(NO_KEY_SOURCE)
        try:
            static_keys(settings)
        except KeyConfigError as error:
            found.configuration.append(str(error))
    try:
        found.rules = load_rules(
            settings.rules_path, env=env, default_upstream=default_upstream(settings)
        )
    except RulesError as error:
        found.rules_problems += error.problems
    database = database or settings.check_database
    if database and found.rules is not None:
        _check_schema(found, found.rules, database)
    return found


def _check_schema(found: Preflight, rules: Rules, database: str) -> None:
    """The rules' tables and columns against the database (rulesops/schema.py)."""
    try:
        schema = check_schema(rules, database)
    except ProofUnavailableError as error:
        found.configuration.append(f"the database check: {error}")
        return
    found.rules_problems += schema.problems
    found.notes += schema.notes
    found.schema_checked = schema.checked


def report(found: Preflight, command: str, *, errors: TextIO, rules_out: TextIO) -> None:
    """Configuration problems to `errors`, each as `configuration: ...`; rules problems to
    `rules_out` as `PATH:LINE: key: message` (after a heading on `errors` when they share it)."""
    for problem in found.configuration:
        print(f"configuration: {problem}", file=errors)
    if found.rules_problems and rules_out is errors:
        path = found.rules_problems[0].path
        print(f"{command}: the rules in {path} do not load:", file=errors)
    for rule_problem in found.rules_problems:
        print(rule_problem, file=rules_out)
    for note in found.notes:
        print(f"note: {note}", file=errors)
