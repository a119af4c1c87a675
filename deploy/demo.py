"""`make demo`: two tenants on one Electric-protocol upstream, isolated by the gateway.

Creates a `shape_gateway_demo` database with the tables the shipped rules name (tenants `acme`
and `globex`, a few users and roles; `deploy/seed.sql`, which the compose demo on the real
Electric loads too), starts our Electric-protocol server on it (tests/electric:
the real Electric needs Docker) and the gateway with the shipped `shape_rules.yaml`, then prints
tokens and `curl` lines and shows what each caller sees. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import psycopg
from psycopg import sql

from tests.services import postgres_url

ROOT = Path(__file__).resolve().parent.parent
DEMO_DB = "shape_gateway_demo"
SEED_SQL = Path(__file__).resolve().parent / "seed.sql"  # shared with deploy/compose.yaml
PEOPLE = {
    "alice (acme member)": {"sub": "alice", "tid": "acme", "role": "member"},
    "carol (acme admin)": {"sub": "carol", "tid": "acme", "role": "admin"},
    "bob (globex admin)": {"sub": "bob", "tid": "globex", "role": "admin"},
}


def prepare_database() -> str:
    server = postgres_url()
    with psycopg.connect(server, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DEMO_DB]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DEMO_DB)))
    url = server.rsplit("/", 1)[0] + "/" + DEMO_DB
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SEED_SQL.read_text())
    return url


def free_port(preferred: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
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


async def show(gateway: str, tokens: dict[str, str]) -> None:
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
                rows = [m["value"] for m in body if "key" in m]
                summary = ", ".join(
                    str(r.get("title") or r.get("name") or r.get("body")) for r in rows
                )
                print(f"  {shape:<10} {len(rows)} rows: {summary}")


async def main(once: bool) -> None:
    database = prepare_database()
    electric_port, gateway_port = free_port(3000), free_port(8080)
    electric_secret, jwt_secret = secrets.token_hex(16), secrets.token_urlsafe(48)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    electric = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.electric", "--port", str(electric_port),
        "--dsn", database, "--secret", electric_secret,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    gateway_env = {
        **env,
        "ELECTRIC_URL": f"http://127.0.0.1:{electric_port}",
        "ELECTRIC_SECRET": electric_secret,
        "JWT_SECRET": jwt_secret,
        "GATEWAY_RULES": str(ROOT / "shape_rules.yaml"),
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(gateway_port),
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
        url = f"http://127.0.0.1:{gateway_port}"
        now = int(time.time())
        tokens = {
            who: jwt.encode({**claims, "iat": now, "exp": now + 3600}, jwt_secret, "HS256")
            for who, claims in PEOPLE.items()
        }
        print(f"gateway:  {url}   (upstream: our Electric-protocol server on {database})")
        for who, token in tokens.items():
            print(f"\n# {who}\ncurl -s -H 'Authorization: Bearer {token}' \\\n"
                  f"  '{url}/v1/shape?table=tasks&offset=-1'")  # fmt: skip
        print("\n# explain what a request becomes upstream:")
        print("shape-gateway explain tasks --user alice --tenant acme --role member")
        await show(url, tokens)
        if once:
            return
        print("\nRunning; Ctrl-C to stop. Gateway audit lines follow.", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        while not stop.is_set():
            line = await gateway.stderr.readline()
            if not line:
                break
            event = json.loads(line)
            if event.get("event") == "shape_request":
                print(f"  {event['user']}@{event['tenant']} {event['shape']} -> {event['status']}")
    finally:
        for process in (gateway, electric):
            if process.returncode is None:
                process.terminate()
                await process.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--once", action="store_true", help="show the isolation and exit")
    asyncio.run(main(parser.parse_args().once))
