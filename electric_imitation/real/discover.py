"""Finding (or starting) a real Electric: from the environment, else Docker, else none.

Environment (all three together):
  ELECTRIC_TEST_URL           e.g. http://127.0.0.1:3000
  ELECTRIC_TEST_SECRET        its ELECTRIC_SECRET (unset when it runs ELECTRIC_INSECURE=true)
  ELECTRIC_TEST_DATABASE_URL  the database it replicates from: tests create their tables there
Docker (when no URL is given and `docker info` works; `ELECTRIC_TEST_DOCKER=0` turns it off):
  ELECTRIC_TEST_IMAGE         default electricsql/electric:<PINNED>; a PostgreSQL with
                              wal_level=logical is started beside it on a private network.
The server's version is read from its `electric-server` header.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from electric_imitation.versions import parse_banner

PINNED_IMAGE: Final = "electricsql/electric:1.7.12"
POSTGRES_IMAGE: Final = "postgres:17"
DOCKER_SECRET: Final = "real-electric-secret-for-tests"  # a throwaway container's
START_TIMEOUT: Final = 120.0  # seconds: image pull aside, Electric starts in a few


class RealElectricError(RuntimeError):
    """The real Electric asked for cannot be reached or started; the message says why."""


@dataclass(frozen=True, slots=True)
class RealElectric:
    """A running Electric: where it listens, its secret, its database, its version."""

    url: str
    secret: str | None
    database_url: str
    version: tuple[int, int, int]

    @property
    def version_name(self) -> str:
        return ".".join(map(str, self.version))


def real_electric_wanted() -> bool:
    """Whether the tests should run against a real Electric (cheap: no container started)."""
    if os.environ.get("ELECTRIC_TEST_URL"):
        return True
    return os.environ.get("ELECTRIC_TEST_DOCKER", "1") != "0" and _docker_answers()


@functools.cache
def find_real_electric() -> RealElectric | None:
    """The configured or started Electric (once per test session), or None."""
    url = os.environ.get("ELECTRIC_TEST_URL")
    if url:
        database_url = os.environ.get("ELECTRIC_TEST_DATABASE_URL")
        if not database_url:
            raise RealElectricError(
                "ELECTRIC_TEST_URL is set without ELECTRIC_TEST_DATABASE_URL: the tests must "
                "create their tables in the database that Electric replicates from"
            )
        secret = os.environ.get("ELECTRIC_TEST_SECRET") or None
        return RealElectric(url.rstrip("/"), secret, database_url, _wait_until_active(url))
    if real_electric_wanted():
        return _start_in_docker(os.environ.get("ELECTRIC_TEST_IMAGE", PINNED_IMAGE))
    return None


@functools.cache
def _docker_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        subprocess.run([docker, "info"], capture_output=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def _wait_until_active(url: str, within: float = START_TIMEOUT) -> tuple[int, int, int]:
    """Poll `/v1/health` until Electric says `active`; its version from `electric-server`."""
    deadline = time.monotonic() + within
    problem = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/v1/health", timeout=5) as answer:  # noqa: S310 - a URL the tester configured
                version = parse_banner(answer.headers.get("electric-server"))
                if answer.status == 200 and version is not None:
                    return version
                problem = f"status {answer.status}, electric-server {version}"
        except OSError as error:
            problem = str(error)
        time.sleep(0.5)
    raise RealElectricError(f"Electric at {url} did not become active: {problem}")


def _start_in_docker(image: str) -> RealElectric:
    """PostgreSQL (logical replication) and Electric on a private network, stopped at exit."""
    try:
        from testcontainers.core.container import DockerContainer  # noqa: PLC0415 - optional
        from testcontainers.core.network import Network  # noqa: PLC0415 - optional
    except ImportError as error:
        raise RealElectricError(
            "a Docker engine answers but testcontainers is not installed: "
            "pip install -e '.[dev]', or set ELECTRIC_TEST_DOCKER=0 to use the imitation"
        ) from error
    network: Any = Network()
    network.create()
    atexit.register(network.remove)
    postgres: Any = (
        DockerContainer(POSTGRES_IMAGE, command="postgres -c wal_level=logical")
        .with_env("POSTGRES_PASSWORD", "password")
        .with_env("POSTGRES_DB", "electric")
        .with_exposed_ports(5432)
        .with_network(network)
        .with_network_aliases("postgres")
    )
    postgres.start()
    atexit.register(postgres.stop)
    host, port = postgres.get_container_host_ip(), postgres.get_exposed_port(5432)
    database_url = f"postgresql://postgres:password@{host}:{port}/electric"
    _wait_for_postgres(database_url)
    electric: Any = (
        DockerContainer(image)
        .with_env("DATABASE_URL", "postgresql://postgres:password@postgres:5432/electric")
        .with_env("ELECTRIC_SECRET", DOCKER_SECRET)
        .with_env("ELECTRIC_ENABLE_INTEGRATION_TESTING", "true")  # DELETE: the rotation hook
        .with_exposed_ports(3000)
        .with_network(network)
    )
    electric.start()
    atexit.register(electric.stop)
    url = f"http://{electric.get_container_host_ip()}:{electric.get_exposed_port(3000)}"
    return RealElectric(url, DOCKER_SECRET, database_url, _wait_until_active(url))


def _wait_for_postgres(database_url: str, within: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + within
    while True:
        with (
            contextlib.suppress(psycopg.OperationalError),
            psycopg.connect(database_url, connect_timeout=3) as connection,
        ):
            connection.execute("SELECT 1")
            return
        if time.monotonic() > deadline:
            raise RealElectricError(f"PostgreSQL at {database_url} did not start")
        time.sleep(0.5)
