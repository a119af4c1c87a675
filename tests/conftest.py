"""Shared fixtures: real PostgreSQL and Redis, never replaced by fakes.

Under CI (CI=true) a test that needs PostgreSQL, Redis, Node.js or Chromium must not be
skipped: a missing one fails the run instead of silently passing it (tests/requirements.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest

from tests import requirements, services


@pytest.fixture(scope="session")
def database_url() -> str:
    try:
        return services.postgres_url()
    except services.ServiceUnavailableError as error:
        requirements.unavailable("PostgreSQL", str(error))


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        return services.redis_url()
    except services.ServiceUnavailableError as error:
        requirements.unavailable("Redis", str(error))


@pytest.fixture
def pg(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI") and requirements.skipped and exitstatus == 0:
        session.exitstatus = 1


pytest_plugins = ["tests.gateway", "tests.electric_targets", "tests.redis_servers"]
