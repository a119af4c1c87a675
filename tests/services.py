"""PostgreSQL and Redis for tests and the demo, found or started in this order:

1. `DATABASE_URL` / `REDIS_URL` when set;
2. the machine's own servers on the default ports (127.0.0.1:5432 database `test`, :6379);
3. testcontainers, when it is installed and a Docker engine answers;
4. throwaway servers started from `initdb`/`postgres` and `redis-server` binaries on PATH
   (or /usr/lib/postgresql/*/bin), in a temporary directory, stopped at exit;
5. otherwise ServiceUnavailableError with what to install.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

DEFAULT_DATABASE_URL: Final = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL: Final = "redis://127.0.0.1:6379/0"


class ServiceUnavailableError(RuntimeError):
    """No way to reach or start the service; the message says what to install or set."""


def without_password(url: str) -> str:
    """`url` with its password (if any) shown as `***`: safe to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _postgres_problem(url: str) -> str | None:
    """None when PostgreSQL at `url` answers, else why not, in one line."""
    try:
        with psycopg.connect(url, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        return _one_line(error)
    return None


def _redis_problem(url: str) -> str | None:
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        return _one_line(error)
    finally:
        client.close()
    return None


def _postgres_answers(url: str) -> bool:
    return _postgres_problem(url) is None


def _redis_answers(url: str) -> bool:
    return _redis_problem(url) is None


def free_port() -> int:
    """A loopback port the OS reports free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _docker_answers() -> bool:
    try:
        import docker  # noqa: PLC0415 - optional

        docker.from_env().ping()
    except Exception:  # noqa: BLE001 - any failure means "no usable engine"
        return False
    return True


def _container(kind: str) -> str | None:
    """A testcontainers URL, or None when testcontainers or Docker is missing."""
    try:
        if kind == "postgres":
            from testcontainers.postgres import PostgresContainer  # noqa: PLC0415

            if not _docker_answers():
                return None
            pg = PostgresContainer("postgres:16", dbname="test").start()
            atexit.register(pg.stop)
            return str(pg.get_connection_url()).replace("+psycopg2", "")
        from testcontainers.redis import RedisContainer  # noqa: PLC0415

        if not _docker_answers():
            return None
        rd = RedisContainer("redis:7").start()
        atexit.register(rd.stop)
        return f"redis://{rd.get_container_host_ip()}:{rd.get_exposed_port(6379)}/0"
    except ImportError:
        return None


def _as_postgres_user() -> list[str]:
    """PostgreSQL refuses to run as root; run its binaries as `postgres` when we are root."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _throwaway_postgres() -> str | None:
    initdb = shutil.which("initdb") or next(
        iter(glob.glob("/usr/lib/postgresql/*/bin/initdb")), None
    )
    if initdb is None:
        return None
    bindir = os.path.dirname(initdb)
    directory = tempfile.mkdtemp(prefix="gw-pg-")
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres")
    port = free_port()
    runas = _as_postgres_user()
    subprocess.run([*runas, initdb, "-D", directory, "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True)  # fmt: skip
    server = subprocess.Popen(
        [*runas, os.path.join(bindir, "postgres"), "-D", directory, "-p", str(port),
         "-k", directory, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def stop() -> None:
        server.terminate()
        server.wait(10)
        shutil.rmtree(directory, ignore_errors=True)

    atexit.register(stop)
    base = f"postgresql://postgres@127.0.0.1:{port}"
    for _ in range(100):
        if _postgres_answers(f"{base}/postgres"):
            with psycopg.connect(f"{base}/postgres", autocommit=True) as connection:
                connection.execute("CREATE DATABASE test")
            return f"{base}/test"
        time.sleep(0.1)
    return None


def _throwaway_redis() -> str | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    atexit.register(server.terminate)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        if _redis_answers(url):
            return url
        time.sleep(0.05)
    return None


_found: dict[str, str] = {}


def _provide(
    kind: str,
    variable: str,
    default: str,
    problem: Callable[[str], str | None],
    start: Callable[[], str | None],
    advice: str,
) -> str:
    """Found or started once per process, in the order the module docstring gives."""
    if kind not in _found:
        explicit = os.environ.get(variable)
        if explicit:
            found = problem(explicit)
            if found is not None:
                raise ServiceUnavailableError(
                    f"{variable}={without_password(explicit)} does not answer ({found}); "
                    f"correct it, or unset it to use {default}"
                )
            _found[kind] = explicit
        elif problem(default) is None:
            _found[kind] = default
        else:
            url = _container(kind) or start()
            if url is None:
                raise ServiceUnavailableError(advice)
            _found[kind] = url
    return _found[kind]


def postgres_url() -> str:
    return _provide(
        "postgres", "DATABASE_URL", DEFAULT_DATABASE_URL, _postgres_problem, _throwaway_postgres,
        "PostgreSQL is not reachable: set DATABASE_URL, run a server on 127.0.0.1:5432 with "
        "database `test`, or install PostgreSQL (apt-get install postgresql) so tests can "
        "start a throwaway one",
    )  # fmt: skip


def redis_url() -> str:
    return _provide(
        "redis", "REDIS_URL", DEFAULT_REDIS_URL, _redis_problem, _throwaway_redis,
        "Redis is not reachable: set REDIS_URL, run redis-server on 127.0.0.1:6379, or "
        "install it (apt-get install redis-server)",
    )  # fmt: skip
