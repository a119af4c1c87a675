"""`make demo` shows two tenants isolated: run it once and read what each caller saw."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import jwt
import pytest

from deploy.demo import SEEN_HEADING
from tests.factories import SHIPPED_RULES

ROOT = SHIPPED_RULES.parent

pytestmark = pytest.mark.postgres


def test_demo_shows_each_tenant_only_its_rows(demo_output: str) -> None:
    sections = demo_output.split("\n\n")
    alice = next(s for s in sections if s.startswith("alice (acme member):"))
    bob = next(s for s in sections if s.startswith("bob (globex admin):"))
    assert "tasks      1 row: Test the skates" in alice
    assert "Hire henchmen" not in alice
    assert "Globex master plan" not in alice
    assert "tasks      1 row: Hire henchmen" in bob
    assert "Acme" not in bob
    assert "skates" not in bob


@pytest.fixture(scope="module")
def demo_output(database_url: str) -> str:
    prefix = f"gw-demo-{uuid.uuid4().hex}"
    env = {**os.environ, "GATEWAY_CORS_ORIGINS": "https://mine.example.com"}
    result = subprocess.run(
        [sys.executable, "-m", "deploy.demo", "--once", "--redis-prefix", prefix],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_readme_shows_what_the_demo_prints(demo_output: str) -> None:
    readme = (ROOT / "README.md").read_text()
    shown = readme.split("`make demo` ends by showing what each demo user sees")[1]
    block = shown.split("```\n", 2)[1]
    printed = demo_output.split(SEEN_HEADING + "\n\n", 1)[1]
    assert block == printed


def pasted(line: str) -> subprocess.CompletedProcess[str]:
    """`line` run as a person pasting it into a shell in the repository would run it."""
    shell = ["/bin/sh", "-c", line]
    return subprocess.run(shell, cwd=ROOT, capture_output=True, text=True, check=False)


def test_the_commands_the_demo_prints_work_as_printed(demo_output: str) -> None:
    lines = demo_output.splitlines()
    token = next(line for line in lines if " token --user " in line)
    explain = next(line for line in lines if " explain tasks " in line)
    script = Path(sys.executable).parent / "shape-gateway"  # make install's; not on PATH
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    assert token.split("' ", 1)[1].startswith(f"{shown} token")
    minted = pasted(token)
    assert minted.returncode == 0, minted.stderr
    secret = token.split("'")[1]
    claims = jwt.decode(minted.stdout.strip(), secret, algorithms=["HS256"])
    assert (claims["sub"], claims["tid"], claims["role"]) == ("alice", "acme", "member")
    explained = pasted(explain)
    assert explained.returncode == 0, explained.stderr
    assert explained.stdout.startswith("allowed: shape 'tasks'")


def test_the_demo_says_where_its_redis_keys_are_and_keeps_the_users_cors_origins(
    demo_output: str,
) -> None:
    lines = demo_output.splitlines()
    redis_line = next(line for line in lines if line.startswith("Redis:"))
    assert "keys under gw-demo-" in redis_line or "in memory" in redis_line
    cors = next(line for line in lines if line.startswith("CORS:"))
    assert "https://mine.example.com" in cors


def test_a_wrong_database_url_is_one_line_without_its_password() -> None:
    env = {**os.environ, "DATABASE_URL": "postgresql://demo:s3cret-pw@127.0.0.1:9/nope"}
    result = subprocess.run(
        [sys.executable, "-m", "deploy.demo", "--once"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        "demo: cannot use PostgreSQL: DATABASE_URL=postgresql://demo:***@127.0.0.1:9/nope does "
        "not answer ("
    )
    assert "s3cret-pw" not in result.stderr + result.stdout
