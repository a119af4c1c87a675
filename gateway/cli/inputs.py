"""What every command reads the same way: settings, rules, `NAME=VALUE` flags, exit codes.

Problems are printed where the operator looks (`PATH:LINE: key: message` for rules) and the
command gets None back, so each command decides its own exit code in one line.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any, Final, NoReturn, TextIO, TypeAlias

from gateway.rules.load import RulesError, load_rules
from gateway.rules.model import Rules, Upstream
from gateway.settings import Settings, SettingsError, load_settings

EXIT_OK: Final = 0
EXIT_PROBLEM: Final = 1
EXIT_USAGE: Final = 2


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors exit with the command's own usage code.

    argparse always exits 2 on a bad argument; `diff` reserves 2 for "access widened", so its
    usage errors must exit 1 or a typo in a CI job would read as a widening.
    """

    def __init__(self, *args: Any, usage_exit: int = EXIT_USAGE, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.usage_exit = usage_exit

    def error(self, message: str) -> NoReturn:
        self.print_usage()
        self.exit(self.usage_exit, f"{self.prog}: error: {message}\n")


Commands: TypeAlias = "argparse._SubParsersAction[CommandParser]"


def pairs(values: Sequence[str] | None, flag: str) -> list[tuple[str, str]]:
    """`--flag NAME=VALUE` occurrences as pairs; a malformed one ends the command."""
    found = []
    for item in values or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{flag} expects NAME=VALUE, got {item!r}")
        found.append((key, value))
    return found


def settings_or_report(env: Mapping[str, str], out: TextIO, **overrides: object) -> Settings | None:
    try:
        return load_settings(env, **overrides)
    except SettingsError as error:
        for problem in error.problems:
            print(f"configuration: {problem}", file=out)
        return None


def default_upstream(settings: Settings) -> Upstream:
    return Upstream("default", settings.electric_url, settings.electric_secret)


def rules_or_report(
    path: str, settings: Settings, env: Mapping[str, str], out: TextIO
) -> Rules | None:
    try:
        return load_rules(path, env=env, default_upstream=default_upstream(settings))
    except RulesError as error:
        for problem in error.problems:
            print(problem, file=out)
        return None
