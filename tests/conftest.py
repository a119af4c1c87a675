"""Shared fixtures: real PostgreSQL and Redis, never replaced by fakes.

Under CI (CI=true) a test that needs PostgreSQL or Redis must not be skipped: a missing server
fails the run instead of silently passing it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NoReturn

import psycopg
import pytest

from tests import services

_skipped_services: list[str] = []


def _unavailable(service: str, reason: str) -> NoReturn:
    message = reason
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run every {service} test", pytrace=False)
    _skipped_services.append(service)
    pytest.skip(message)
    raise AssertionError  # pytest.skip raises; this line only informs the type checker


@pytest.fixture(scope="session")
def database_url() -> str:
    try:
        return services.postgres_url()
    except services.ServiceUnavailableError as error:
        _unavailable("PostgreSQL", str(error))


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        return services.redis_url()
    except services.ServiceUnavailableError as error:
        _unavailable("Redis", str(error))


@pytest.fixture
def pg(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI") and _skipped_services and exitstatus == 0:
        session.exitstatus = 1


pytest_plugins = ["tests.gateway", "tests.redis_servers"]
