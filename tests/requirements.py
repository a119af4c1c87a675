"""What a test needs from the machine, and what happens when it is missing.

Locally a missing service, tool or browser skips the tests that need it, with a message saying
exactly what to install. Under CI (`CI` set) it fails them instead: CI must run every test, and
a skipped one would pass the run silently. tests/conftest.py also fails a CI session that
skipped anything for this reason.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

skipped: list[str] = []


def unavailable(what: str, problem: str) -> NoReturn:
    """Skip (locally) or fail (under CI) the current test: `what` is missing, `problem` says
    how to install it."""
    if os.environ.get("CI"):
        pytest.fail(f"{problem}; CI must run every {what} test", pytrace=False)
    skipped.append(what)
    pytest.skip(problem)
    raise AssertionError  # pytest.skip raises; this line only informs the type checker
