"""The imitation's own tests run on the real PostgreSQL the gateway's tests use.

The server is found (or a throwaway one started) by the same helper as tests/conftest.py's, so
a missing database skips locally and fails under CI in one way for the whole repository.
"""

from __future__ import annotations

import pytest

from tests import requirements, services


@pytest.fixture(scope="session")
def database_url() -> str:
    try:
        return services.postgres_url()
    except services.ServiceUnavailableError as error:
        requirements.unavailable("PostgreSQL", str(error))
