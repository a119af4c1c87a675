"""Shared fixtures: real PostgreSQL and Redis, never replaced by fakes.

Under CI (CI=true) a test that needs PostgreSQL or Redis must not be skipped: a missing server
fails the run instead of silently passing it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
_skipped_services: list[str] = []


def _unavailable(service: str, reason: str) -> None:
    message = f"{service} is not reachable ({reason})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run every {service} test", pytrace=False)
    _skipped_services.append(service)
    pytest.skip(message)


@pytest.fixture(scope="session")
def database_url() -> str:
    try:
        with psycopg.connect(DATABASE_URL, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        _unavailable("PostgreSQL", str(error).strip())
    return DATABASE_URL


@pytest.fixture
def pg(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI") and _skipped_services and exitstatus == 0:
        session.exitstatus = 1


pytest_plugins = ["tests.gateway"]
