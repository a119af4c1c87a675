"""`make demo` shows two tenants isolated: run it once and read what each caller saw."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from tests.factories import SHIPPED_RULES

pytestmark = pytest.mark.postgres


def test_demo_shows_each_tenant_only_its_rows(database_url: str) -> None:
    prefix = f"gw-demo-{uuid.uuid4().hex}"  # the demo clears its Redis prefix: one of our own
    result = subprocess.run(
        [sys.executable, "-m", "deploy.demo", "--once", "--redis-prefix", prefix],
        cwd=SHIPPED_RULES.parent, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    sections = result.stdout.split("\n\n")
    alice = next(s for s in sections if s.startswith("alice (acme member):"))
    bob = next(s for s in sections if s.startswith("bob (globex admin):"))
    assert "tasks      1 rows: Test the skates" in alice
    assert "Hire henchmen" not in alice
    assert "Globex master plan" not in alice
    assert "tasks      1 rows: Hire henchmen" in bob
    assert "Acme" not in bob
    assert "skates" not in bob
