"""deploy/compose.yaml: valid against the Compose Specification's own JSON schema, and the
sidecar's invariants hold (Electric unpublished, one source for ELECTRIC_SECRET, the demo rows,
the rules where the image reads them). `docker compose up` itself needs a Docker engine."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import redis
import yaml

from tests.deploy.files import (
    COMPOSE,
    DEPLOY,
    K8S,
    ROOT,
    container,
    dockerfile_instructions,
    final_stage,
    key_values,
    load_documents,
    load_yaml,
    one,
)
from tests.redis_servers import RedisProcess, RedisServers
from tests.services import free_port

SCHEMA = Path(__file__).resolve().parent / "schemas" / "compose-spec.json"
REDIS_CONF = DEPLOY / "redis" / "redis.conf"
VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(COMPOSE)
    return document


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def env_example() -> dict[str, str]:
    lines = (DEPLOY / ".env.example").read_text().splitlines()
    pairs = (line.partition("=") for line in lines if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip() for key, _, value in pairs}


def test_compose_file_is_valid_against_the_compose_specification(
    compose: dict[str, Any],
) -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_schema_refuses_a_misspelt_service_key(compose: dict[str, Any]) -> None:
    """The check can fail: the schema forbids keys it does not know."""
    schema = json.loads(SCHEMA.read_text())
    broken = json.loads(json.dumps(compose))
    broken["services"]["gateway"]["port"] = ["8080:8080"]
    assert not jsonschema.Draft7Validator(schema).is_valid(broken)


def test_only_the_gateway_publishes_a_port(compose: dict[str, Any]) -> None:
    published = {name for name, s in services(compose).items() if s.get("ports")}
    assert published == {"gateway"}
    electric = services(compose)["electric"]
    assert "expose" not in electric
    assert electric.get("network_mode") is None  # never on the host's network


def test_electric_is_the_official_image_pinned_to_the_1x_release_the_manifests_use(
    compose: dict[str, Any],
) -> None:
    image = services(compose)["electric"]["image"]
    assert re.fullmatch(r"electricsql/electric:1\.\d+\.\d+", image)
    deployment = one(load_documents(K8S / "deployment.yaml"), "Deployment")
    assert container(deployment, "electric")["image"] == image


def test_electric_secret_comes_from_one_variable_set_in_the_env_example(
    compose: dict[str, Any],
) -> None:
    for name in ("electric", "gateway"):
        value = services(compose)[name]["environment"]["ELECTRIC_SECRET"]
        match = VARIABLE.fullmatch(value)
        assert match is not None, f"{name}: ELECTRIC_SECRET must be ${{ELECTRIC_SECRET...}}"
        assert match.group(1) == "ELECTRIC_SECRET"
        assert match.group(2) == ":?", "a missing secret must stop compose, not default"
    assert env_example()["ELECTRIC_SECRET"]


def test_every_variable_without_a_default_is_in_the_env_example() -> None:
    required = {m.group(1) for m in VARIABLE.finditer(COMPOSE.read_text()) if m.group(2) != ":-"}
    assert required <= set(env_example()), required - set(env_example())
    assert len(env_example()["JWT_SECRET"]) >= 32  # the demo starts with the example's values
    assert len(env_example()["GATEWAY_ADMIN_TOKEN"]) >= 32  # else the gateway does not start


def test_postgres_replicates_logically_and_reports_health(compose: dict[str, Any]) -> None:
    postgres = services(compose)["postgres"]
    assert "wal_level=logical" in postgres["command"]
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    dependents = services(compose)["electric"]["depends_on"]
    assert dependents["postgres"]["condition"] == "service_healthy"


def test_postgres_loads_the_demo_rows_make_demo_uses(compose: dict[str, Any]) -> None:
    mounts = services(compose)["postgres"]["volumes"]
    seed = next(m for m in mounts if isinstance(m, str) and "initdb.d" in m)
    source, target = seed.split(":")[:2]
    assert (COMPOSE.parent / source).resolve() == DEPLOY / "seed.sql"
    assert target.endswith(".sql")
    demo = (DEPLOY / "demo.py").read_text()
    assert 'SEED_SQL = Path(__file__).resolve().parent / "seed.sql"' in demo


def test_gateway_is_built_from_the_dockerfile_and_reaches_electric_by_service_name(
    compose: dict[str, Any],
) -> None:
    gateway = services(compose)["gateway"]
    build = gateway["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == (
        DEPLOY / "Dockerfile"
    )
    assert gateway["environment"]["ELECTRIC_URL"] == "http://electric:3000"
    assert gateway["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert gateway["depends_on"]["electric"]["condition"] == "service_healthy"
    assert gateway["read_only"] is True
    assert gateway["cap_drop"] == ["ALL"]


def test_gateway_reads_a_rules_folder_where_the_image_looks_for_its_rules(
    compose: dict[str, Any],
) -> None:
    """A folder, not the file: Docker's bind mount of one file keeps that file's inode, so a
    save that replaces the file (editors, sed -i) would never reach the gateway. In a mounted
    folder the gateway sees the new file, as tests/functional/test_operations.py's editor save
    shows."""
    env = {
        k: v
        for i in final_stage(dockerfile_instructions())
        if i.keyword == "ENV"
        for k, v in key_values(i.arguments).items()
    }
    (mount,) = services(compose)["gateway"]["volumes"]
    rules = Path(env["GATEWAY_RULES"])
    source = (COMPOSE.parent / mount["source"]).resolve()
    assert source.is_dir()
    assert mount["target"] == str(rules.parent)
    assert (source / rules.name).read_text() == (ROOT / "shape_rules.yaml").read_text()
    assert mount["read_only"] is True


def test_the_rules_folder_holds_nothing_but_the_rules_and_their_tests() -> None:
    """Whatever is in the folder is in the gateway's container: never deploy/.env's secrets."""
    names = sorted(path.name for path in (DEPLOY / "rules").iterdir())
    assert names == ["shape_rules.test.yaml", "shape_rules.yaml"]


def interpolated(compose_text: str, values: dict[str, str]) -> dict[str, Any]:
    """compose.yaml as `docker compose` reads it with `values` for its variables."""

    def value(match: re.Match[str]) -> str:
        name, kind, default = match.groups()
        return values.get(name) or (default if kind == ":-" else "")

    document: dict[str, Any] = yaml.safe_load(VARIABLE.sub(value, compose_text))
    return document


def urls_in(document: dict[str, Any]) -> list[str]:
    return [value for service in document["services"].values()
            for value in (service.get("environment") or {}).values()
            if isinstance(value, str) and "://" in value]  # fmt: skip


def suggested_secret() -> str:
    """What the command .env.example suggests prints (run for real when openssl is here)."""
    command = re.search(
        r"Generate one with:\s+(openssl rand [^\n]+)", (DEPLOY / ".env.example").read_text()
    )
    assert command is not None
    assert command.group(1).strip() == "openssl rand -hex 32"
    if shutil.which("openssl") is None:
        return secrets.token_hex(32)
    return subprocess.run(
        command.group(1).split(), capture_output=True, text=True, check=True
    ).stdout.strip()


def test_compose_urls_parse_with_the_secret_the_env_example_suggests() -> None:
    secret = suggested_secret()
    values = dict.fromkeys(env_example(), secret)
    urls = urls_in(interpolated(COMPOSE.read_text(), values))
    database = [u for u in urls if u.startswith("postgresql://")]
    assert database, urls
    for url in database:
        parts = urlsplit(url)
        assert (parts.password, parts.hostname, parts.port) == (secret, "postgres", 5432)


def test_a_base64_secret_would_break_the_database_url() -> None:
    """Why hex: a secret with `/` cuts the URL's authority short (the check above can fail)."""
    base64 = "ab/cd+ef=="
    urls = urls_in(interpolated(COMPOSE.read_text(), dict.fromkeys(env_example(), base64)))
    (database,) = (u for u in urls if u.startswith("postgresql://"))
    assert urlsplit(database).password != base64


def redis_directives(path: Path = REDIS_CONF) -> dict[str, str]:
    """`directive value` lines of a redis.conf, comments dropped (the last one wins)."""
    pairs = (line.split(None, 1) for line in path.read_text().splitlines())
    return {p[0].lower(): p[1] if len(p) > 1 else "" for p in pairs if p and p[0][0] != "#"}


def megabytes(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(gb|mb|kb|)", value.lower()).groups()  # type: ignore[union-attr]
    return int(number) * {"gb": 1024, "mb": 1, "kb": 1 / 1024, "": 1 / 1024 / 1024}[unit]


def test_redis_runs_with_the_shipped_config_capped_never_evicting_and_persisted(
    compose: dict[str, Any],
) -> None:
    redis_service = services(compose)["redis"]
    config = next(m for m in redis_service["volumes"] if m.startswith("./redis/redis.conf:"))
    _, target, mode = config.split(":")
    assert mode == "ro"
    assert redis_service["command"] == ["redis-server", target]
    directives = redis_directives()
    assert directives["maxmemory-policy"] == "noeviction"  # a revocation is never evicted
    # Room for both audit streams' byte budgets (docs/sizing.md) and the rest.
    assert megabytes(directives["maxmemory"]) >= 1024 + 256 + 128
    assert directives["appendonly"] == "yes"
    data = next(m for m in redis_service["volumes"] if m.startswith("redis-data:"))
    assert "dir" not in directives  # the image's working directory, /data, holds the files
    assert data == "redis-data:/data"  # the append-only file outlives the container
    assert "redis-data" in compose["volumes"]


def test_the_shipped_redis_config_loads_and_a_full_redis_refuses_writes_keeping_revocations(
    redis_servers: RedisServers, tmp_path: Path
) -> None:
    """The real redis-server reads the file (an unknown directive would stop it); filled to
    its cap (made small here), it refuses writes rather than evicting the revocation stream."""
    port, home = free_port(), tmp_path / "redis"
    argv = [str(REDIS_CONF), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(home),
            "--maxmemory", "4mb"]  # fmt: skip
    server = redis_servers.start(RedisProcess(home, port, argv))
    client = server.client()
    try:
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.xadd("shape-gateway:{revocations}", {"type": "session.revoked", "user": "eve"})
        refused = None
        for n in range(10_000):
            try:
                client.set(f"shape-gateway:filler:{n}", "x" * 4096)
            except redis.ResponseError as error:
                refused = str(error)
                break
        assert refused is not None
        assert "maxmemory" in refused
        assert client.xlen("shape-gateway:{revocations}") == 1
        assert client.get("shape-gateway:filler:0") is not None  # nothing was evicted
    finally:
        client.close()
    assert any(home.glob("appendonlydir/*.aof")) or any(home.glob("*.aof"))
