"""`shape-gateway serve`: run the gateway until SIGTERM."""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Mapping

from gateway.auth.keys import KeyConfigError
from gateway.cli.inputs import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, Commands
from gateway.cli.preflight import report, run_preflight
from gateway.logs import configure_logging
from gateway.rules.load import RulesError
from gateway.server.connections import raise_file_limit
from gateway.server.runtime import run_async
from gateway.server.serve import serve
from gateway.server.workers import Supervisor
from gateway.web.app import check_loadable


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "serve",
        help="run the gateway (the default command)",
        description="Run the gateway until SIGTERM, configured from the environment (see "
        "docs/configuration.md); the flags override it. Reloads the rules on change and SIGHUP.",
    )
    parser.add_argument("--host", help="listen address (GATEWAY_HOST)")
    parser.add_argument("--port", type=int, help="listen port (GATEWAY_PORT)")
    parser.add_argument("--rules", help="rules file (GATEWAY_RULES)")
    parser.add_argument("--upstream", help="Electric's URL (ELECTRIC_URL)")
    parser.add_argument(
        "--workers", type=int, help="processes sharing the port, each a replica (GATEWAY_WORKERS)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    found = run_preflight(
        env,
        keys=True,
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        rules_path=getattr(args, "rules", None),
        electric_url=getattr(args, "upstream", None),
        workers=getattr(args, "workers", None),
    )
    report(found, "serve", errors=sys.stderr, rules_out=sys.stderr)
    settings = found.settings
    if found.exit_code != EXIT_OK or settings is None:
        return found.exit_code
    configure_logging(settings.log_format)
    raise_file_limit()  # before the workers start: they inherit it
    try:
        if settings.workers > 1:
            check_loadable(settings, env)  # the rules as the workers will load them
            return Supervisor(settings, env).run()
        run_async(serve(settings, env))
    except RulesError as error:  # changed on disk since the preflight
        print(f"serve: the rules in {settings.rules_path} do not load:", file=sys.stderr)
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return EXIT_PROBLEM
    except KeyConfigError as error:
        print(f"serve: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        reason = (
            "the address is already in use; stop what listens there, or choose another port "
            "(--port, GATEWAY_PORT)"
            if error.errno == errno.EADDRINUSE
            else str(error)
        )
        print(f"serve: cannot listen on {settings.host}:{settings.port}: {reason}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK
