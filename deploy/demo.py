"""`make demo`: two tenants on one Electric-protocol upstream, isolated by the gateway, and a
web app to watch it in a browser.

Creates a `shape_gateway_demo` database with the tables the shipped rules name (tenants `acme`
and `globex`, a few users and roles; `deploy/seed.sql`, which the compose demo on the real
Electric loads too), starts our Electric-protocol server on it (electric_imitation: the real
Electric needs Docker), the gateway with the shipped `shape_rules.yaml` (revocations in Redis
when one answers), and the demo web app (deploy/webdemo, deploy/web) on two origins: one where
the page sends a bearer token to the gateway on another origin, one where the gateway is
reverse-proxied onto the page's own origin and an HttpOnly cookie carries the token. Prints the
URL to open, tokens and `curl` lines, and what each caller sees. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import psycopg
import redis
from aiohttp import web
from psycopg import sql

from deploy.webdemo.admin import GatewayAdmin
from deploy.webdemo.app import INSTALL_HINT, Backend, Mode, installed, make_app
from deploy.webdemo.directory import PEOPLE, Directory
from deploy.webdemo.proxy import upstream_session
from deploy.webdemo.sessions import COOKIE, Sessions
from tests.services import ServiceUnavailableError, postgres_url, redis_url, without_password

ROOT = Path(__file__).resolve().parent.parent
DEMO_DB = "shape_gateway_demo"
SEED_SQL = Path(__file__).resolve().parent / "seed.sql"  # shared with deploy/compose.yaml
HOST = "127.0.0.1"


def prepare_database(name: str) -> str:
    server = postgres_url()
    with psycopg.connect(server, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = server.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SEED_SQL.read_text())
    return url


def clear_redis(url: str, prefix: str) -> None:
    """The demo starts with no revocations and leaves none behind: its own key prefix only."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def free_port(preferred: int) -> int:
    """`preferred` when it is free, else any free port (0 asks for any)."""
    with socket.socket() as sock:
        try:
            sock.bind((HOST, preferred))
        except OSError:
            sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_for_line(stream: asyncio.StreamReader, marker: str) -> str:
    async with asyncio.timeout(20):
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise RuntimeError(f"process exited before printing {marker!r}")
            if marker in line:
                return line


async def wait_ready(gateway: str) -> None:
    """Until /readyz says ready: with Redis, a replica serves once its revocation view has
    caught up (before that it refuses with 503 revocation_state_stale, by design)."""
    async with asyncio.timeout(20), aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{gateway}/readyz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)


async def drain(stream: asyncio.StreamReader) -> None:
    """Keep reading a child's pipe it would otherwise block on once full."""
    while await stream.readline():
        pass


SEEN_HEADING = "What each demo user sees through the gateway:"  # the README shows what follows


def rows_line(shape: str, rows: list[dict[str, Any]]) -> str:
    titles = ", ".join(str(r.get("title") or r.get("name") or r.get("body")) for r in rows)
    count = f"{len(rows)} row" if len(rows) == 1 else f"{len(rows)} rows"
    return f"  {shape:<10} {count}" + (f": {titles}" if titles else "")


async def show(gateway: str, tokens: dict[str, str]) -> None:
    print(f"\n{SEEN_HEADING}")
    async with aiohttp.ClientSession() as session:
        for who, token in tokens.items():
            print(f"\n{who}:")
            for shape in ("tasks", "projects", "drafts", "documents", "countries"):
                url = f"{gateway}/v1/shape?table={shape}&offset=-1"
                headers = {"Authorization": f"Bearer {token}"}
                async with session.get(url, headers=headers) as response:
                    body: Any = await response.json()
                if response.status != 200:
                    print(f"  {shape:<10} {response.status} {body['error']}")
                    continue
                print(rows_line(shape, [m["value"] for m in body if "key" in m]))


async def serve_site(app: web.Application, port: int) -> web.AppRunner:
    # handler_cancellation: a page that leaves cancels its proxied request, and so the
    # gateway's, which frees the caller's live slot at once.
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, port).start()
    return runner


@contextlib.asynccontextmanager
async def web_app(
    args: argparse.Namespace, gateway: str, database: str, jwt_secret: str, admin_token: str
) -> AsyncIterator[tuple[str, str]]:
    """Both origins of the demo web app; yields (bearer origin, cookie origin)."""
    bearer_port, cookie_port = free_port(args.web_port), free_port(args.same_origin_port)
    bearer_url, cookie_url = f"http://{HOST}:{bearer_port}", f"http://{HOST}:{cookie_port}"
    async with aiohttp.ClientSession() as admin_session, upstream_session() as upstream:
        backend = Backend(
            gateway=gateway,
            database=database,
            directory=Directory(),
            sessions=Sessions(jwt_secret),
            admin=GatewayAdmin(gateway, admin_token, admin_session),
            upstream=upstream,
        )
        bearer = await serve_site(make_app(backend, Mode.BEARER, cookie_url + "/"), bearer_port)
        cookie = await serve_site(make_app(backend, Mode.COOKIE, bearer_url + "/"), cookie_port)
        try:
            yield bearer_url, cookie_url
        finally:
            await cookie.cleanup()
            await bearer.cleanup()


def origins(*urls: str, kept: str = "") -> str:
    """The origins already in GATEWAY_CORS_ORIGINS (`kept`: the demo adds to them, never
    replaces them), then each of the demo's, also as `localhost` (a person may type either)."""
    listed = [o.strip() for o in kept.split(",") if o.strip()]
    listed += [u for url in urls for u in (url, url.replace(HOST, "localhost"))]
    return ",".join(dict.fromkeys(listed))


def command() -> str:
    """How to run `shape-gateway` from here: the virtualenv's script (make install puts it in
    .venv/bin, not on PATH), relative to the working directory when it is below it."""
    script = Path(sys.executable).parent / "shape-gateway"
    if not script.exists():
        return f"{sys.executable} -m gateway"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def audit_line(line: bytes) -> str | None:
    with contextlib.suppress(ValueError):
        event = json.loads(line)
        if event.get("event") == "shape_request" and event.get("user"):
            what = event.get("shape") or event["path"]
            outcome = f"{event['status']} {event['reason']}"
            return f"  {event['user']}@{event['tenant']} {event['method']} {what} -> {outcome}"
    return None


async def main(args: argparse.Namespace) -> int:
    try:
        database = prepare_database(args.database)
    except (ServiceUnavailableError, psycopg.Error) as error:
        reason = " ".join(str(error).split())
        print(f"demo: cannot use PostgreSQL: {reason}", file=sys.stderr)
        return 1
    try:
        redis_server: str | None = redis_url()
    except ServiceUnavailableError as error:
        redis_server = None
        print(f"(no Redis: {error}; the gateway keeps revocations in memory)")
    if redis_server:
        clear_redis(redis_server, args.redis_prefix)
    electric_port = free_port(args.electric_port)
    gateway_port = free_port(args.gateway_port)
    gateway_url = f"http://{HOST}:{gateway_port}"
    electric_secret, jwt_secret = secrets.token_hex(16), secrets.token_urlsafe(48)
    admin_token = secrets.token_urlsafe(32)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    async with contextlib.AsyncExitStack() as stack:
        pages: tuple[str, str] | None = None
        if not args.once:
            pages = await stack.enter_async_context(
                web_app(args, gateway_url, database, jwt_secret, admin_token)
            )
        cors = origins(*(pages or ()), kept=os.environ.get("GATEWAY_CORS_ORIGINS", ""))
        electric = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "electric_imitation", "--port", str(electric_port),
            "--dsn", database, "--secret", electric_secret,
            cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        gateway_env = {
            **env,
            "ELECTRIC_URL": f"http://{HOST}:{electric_port}",
            "ELECTRIC_SECRET": electric_secret,
            "JWT_SECRET": jwt_secret,
            "GATEWAY_RULES": str(ROOT / "shape_rules.yaml"),
            "GATEWAY_HOST": HOST,
            "GATEWAY_PORT": str(gateway_port),
            "GATEWAY_ADMIN_TOKEN": admin_token,  # held by the demo server, never the page
            "GATEWAY_AUTH_COOKIE": COOKIE,
            "GATEWAY_CORS_ORIGINS": cors,
            "GATEWAY_REDIS_PREFIX": args.redis_prefix,
            "REDIS_URL": redis_server or "",
            "LOG_FORMAT": "json",
        }
        gateway = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "serve",
            cwd=ROOT, env=gateway_env, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert electric.stdout is not None
            assert gateway.stderr is not None
            await wait_for_line(electric.stdout, "listening")
            await wait_for_line(gateway.stderr, "gateway_listening")
            await wait_ready(gateway_url)
            setup = Setup(gateway_url, database, jwt_secret, args.redis_prefix, redis_server, cors)
            await run(args, setup, pages)
            if not args.once and pages is not None:
                await follow(electric.stdout, gateway.stderr)
        finally:
            for process in (gateway, electric):
                if process.returncode is None:
                    process.terminate()
                    await process.wait()
            if redis_server:
                clear_redis(redis_server, args.redis_prefix)
    return 0


async def follow(electric: asyncio.StreamReader, gateway: asyncio.StreamReader) -> None:
    """Print the gateway's audit lines until Ctrl-C, SIGTERM or the gateway ends."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    async def audit() -> None:
        while line := await gateway.readline():
            if (shown := audit_line(line)) is not None:
                print(shown, flush=True)
        stop.set()

    async with asyncio.TaskGroup() as group:
        followers = [group.create_task(drain(electric)), group.create_task(audit())]
        await stop.wait()
        for task in followers:
            task.cancel()


@dataclass(frozen=True)
class Setup:
    """What the demo started, as it prints it for a person to use."""

    gateway: str
    database: str
    jwt_secret: str
    redis_prefix: str
    redis: str | None
    cors: str


def print_setup(setup: Setup, tokens: dict[str, str]) -> None:
    where = without_password(setup.database)
    print(f"gateway:  {setup.gateway}   (upstream: our Electric-protocol server on {where})")
    if setup.redis:
        print(f"Redis:    {without_password(setup.redis)}, keys under {setup.redis_prefix}:")
    else:
        print("Redis:    none; revocations, limits and audit de-duplication in memory")
    print(f"CORS:     {setup.cors or '(none)'}")
    for who, token in tokens.items():
        print(f"\n# {who}\ncurl -s -H 'Authorization: Bearer {token}' \\\n"
              f"  '{setup.gateway}/v1/shape?table=tasks&offset=-1'")  # fmt: skip
    run = command()
    print("\n# a token of your own, signed with the demo's JWT_SECRET:")
    print(f"JWT_SECRET='{setup.jwt_secret}' {run} token --user alice --tenant acme --role member")
    print("\n# explain what a request becomes upstream:")
    print(f"{run} explain tasks --user alice --tenant acme --role member")


async def run(args: argparse.Namespace, setup: Setup, pages: tuple[str, str] | None) -> None:
    now = int(time.time())
    tokens = {
        p.label: jwt.encode(
            {"sub": p.user, "tid": p.tenant, "role": p.role, "iat": now, "exp": now + 3600},
            setup.jwt_secret,
            "HS256",
        )
        for p in PEOPLE
    }
    print_setup(setup, tokens)
    await show(setup.gateway, tokens)
    if args.once or pages is None:
        return
    bearer, cookie = pages
    if not installed():
        print(f"\nThe web app needs its npm packages first: {INSTALL_HINT}")
    print(f"\nOpen the demo:  {bearer}/    (bearer token; the gateway is another origin)")
    print(f"Same origin:    {cookie}/    (HttpOnly cookie; /v1 reverse-proxied to the gateway)")
    print("\nRunning; Ctrl-C to stop. Gateway audit lines follow.", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--once", action="store_true", help="show the isolation and exit")
    parser.add_argument("--database", default=DEMO_DB, help="created and seeded when missing")
    parser.add_argument("--redis-prefix", default="shape-gateway-demo")
    for name, port in (
        ("electric", 3000), ("gateway", 8080), ("web", 8000), ("same-origin", 8001),
    ):  # fmt: skip
        parser.add_argument(f"--{name}-port", type=int, default=port, help="0: any free port")
    raise SystemExit(asyncio.run(main(parser.parse_args())))
