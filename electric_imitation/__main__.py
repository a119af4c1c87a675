"""`python -m electric_imitation`: run the fake Electric until SIGTERM/SIGINT.

Prints `electric-fake listening on http://HOST:PORT` once it accepts connections, so a parent
process (Node client tests, the demo) can wait for that line.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from aiohttp import web

from electric_imitation.app import make_electric_app
from electric_imitation.config import DEFAULT_VERSION, MIB, ElectricConfig, default_dsn
from electric_imitation.versions import VERSION_NAMES


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m electric_imitation", description=__doc__)
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--dsn", default=default_dsn(), help="default: $DATABASE_URL or local test DB"
    )
    parser.add_argument(
        "--secret", default=None, help="require ?secret= (Electric's ELECTRIC_SECRET)"
    )
    parser.add_argument("--long-poll-timeout", type=float, default=20.0, help="seconds")
    parser.add_argument("--sse-keepalive", type=float, default=21.0, help="seconds")
    parser.add_argument("--sse-timeout", type=float, default=60.0, help="seconds")
    parser.add_argument(
        "--electric-version",
        choices=VERSION_NAMES,
        default=DEFAULT_VERSION,
        help=f"which Electric to behave like (default {DEFAULT_VERSION})",
    )
    parser.add_argument("--chunk-bytes", type=int, default=10 * MIB, help="log chunk size")
    parser.add_argument("--chunk-rows", type=int, default=None, help="also cap chunk rows")
    parser.add_argument(
        "--snapshot-failure-delay",
        type=float,
        default=5.0,
        help="1.0.10: seconds before a failed snapshot's started 200 is cut",
    )
    parser.add_argument("--no-gzip", action="store_true", help="never compress responses")
    parser.add_argument(
        "--allow-shape-deletion", action="store_true", help="answer DELETE /v1/shape (202)"
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    config = ElectricConfig(
        dsn=args.dsn,
        secret=args.secret,
        long_poll_timeout=args.long_poll_timeout,
        sse_keepalive=args.sse_keepalive,
        sse_timeout=args.sse_timeout,
        version=args.electric_version,
        chunk_bytes=args.chunk_bytes,
        chunk_rows=args.chunk_rows,
        snapshot_failure_delay=args.snapshot_failure_delay,
        gzip=not args.no_gzip,
        allow_shape_deletion=args.allow_shape_deletion,
    )
    # handler_cancellation: a client that hangs up cancels its held request, as in Electric.
    runner = web.AppRunner(make_electric_app(config), handler_cancellation=True)
    await runner.setup()
    try:
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        host, port = runner.addresses[0][:2]  # the bound port, also when --port 0
        print(f"electric-fake listening on http://{host}:{port}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    asyncio.run(serve(parse_args(sys.argv[1:] if argv is None else argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
