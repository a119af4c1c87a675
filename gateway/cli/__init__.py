"""`shape-gateway`: the parser and the dispatch. Each command lives in its own module, which
adds its arguments and its `run(args, env) -> exit code`; the work lives outside `cli`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence

from gateway import __version__
from gateway.cli import check, dev_token, diff, revoke, rule_tests, serve
from gateway.cli.inputs import CommandParser

# Help lists the commands in this order.
COMMANDS = (serve, check, rule_tests, diff, dev_token, revoke)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="shape-gateway",
        description="Authenticating, tenant-scoping proxy for Electric's shape API.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}", help="print the version"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    for command in COMMANDS:
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        args = parser.parse_args(["serve"])
    result: int = args.run(args, os.environ if env is None else env)
    return result
