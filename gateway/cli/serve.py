"""`shape-gateway serve`: run the gateway until SIGTERM."""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Mapping

from gateway.auth.keys import KeyConfigError
from gateway.cli.inputs import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, Commands, settings_or_report
from gateway.logs import configure_logging
from gateway.rules.load import RulesError
from gateway.runtime import run_async
from gateway.web.app import check_loadable
from gateway.web.connections import raise_file_limit
from gateway.web.server import serve
from gateway.web.workers import Supervisor


def register(commands: Commands) -> None:
    parser = commands.add_parser("serve", help="run the gateway (the default command)")
    parser.add_argument("--host", help="listen address (GATEWAY_HOST)")
    parser.add_argument("--port", type=int, help="listen port (GATEWAY_PORT)")
    parser.add_argument("--rules", help="rules file (GATEWAY_RULES)")
    parser.add_argument("--upstream", help="Electric's URL (ELECTRIC_URL)")
    parser.add_argument(
        "--workers", type=int, help="processes sharing the port, each a replica (GATEWAY_WORKERS)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings = settings_or_report(
        env,
        sys.stderr,
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        rules_path=getattr(args, "rules", None),
        electric_url=getattr(args, "upstream", None),
        workers=getattr(args, "workers", None),
    )
    if settings is None:
        return EXIT_USAGE
    if not settings.has_key_source:
        print(
            "serve: no JWT key source is configured; set JWT_SECRET (HS256), JWT_PUBLIC_KEY "
            "(PEM or path) or JWT_JWKS_URL",
            file=sys.stderr,
        )
        return EXIT_USAGE
    configure_logging(settings.log_format)
    raise_file_limit()  # before the workers start: they inherit it
    try:
        if settings.workers > 1:
            check_loadable(settings, env)  # report broken rules once, not once per worker
            return Supervisor(settings, env).run()
        run_async(serve(settings, env))
    except RulesError as error:
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
