"""The shipped deployment files, read the way their tools read them, for the tests to check.

The Dockerfile is split into instructions (continuations joined, comments dropped); the
kustomization is rendered as kustomize would for what it uses here (its resources plus the
ConfigMap its generator makes), so the tests need no kustomize binary.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

ROOT: Final = Path(__file__).resolve().parent.parent.parent
DEPLOY: Final = ROOT / "deploy"
DOCKERFILE: Final = DEPLOY / "Dockerfile"
COMPOSE: Final = DEPLOY / "compose.yaml"
K8S: Final = DEPLOY / "k8s"
NGINX: Final = DEPLOY / "nginx"


@dataclass(frozen=True, slots=True)
class Instruction:
    stage: int  # 0 for the first FROM, 1 for the second, ...
    keyword: str  # upper case: FROM, RUN, ENV, ...
    arguments: str


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    instructions: list[Instruction] = []
    stage, pending = -1, ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(stage, keyword.upper(), arguments.strip()))
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def key_values(arguments: str) -> dict[str, str]:
    """`ENV`/`LABEL`/`ARG` arguments (`A=1 B="two words"`) as a dict."""
    pairs = (word.partition("=") for word in shlex.split(arguments))
    return {key: value for key, _, value in pairs}


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def kustomization() -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(K8S / "kustomization.yaml")
    return document


def render_kustomization() -> list[dict[str, Any]]:
    """The objects `kubectl apply -k deploy/k8s` creates: the listed resources, the generated
    ConfigMaps, the `images` overrides and the `labels` applied to metadata."""
    config = kustomization()
    objects = [doc for name in config["resources"] for doc in load_documents(K8S / name)]
    for generator in config.get("configMapGenerator", []):
        data = {Path(name).name: (K8S / name).read_text() for name in generator["files"]}
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": generator["name"]},
                "data": data,
            }
        )
    images = {image["name"]: image for image in config.get("images", [])}
    extra_labels = {k: v for entry in config.get("labels", []) for k, v in entry["pairs"].items()}
    for document in objects:
        document["metadata"].setdefault("labels", {}).update(extra_labels)
        for container in containers(document):
            override = images.get(container["image"])
            if override:
                container["image"] = f"{override['newName']}:{override['newTag']}"
    return objects


def containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container of a workload's pod, native sidecars (restartable init containers) too."""
    if document.get("kind") != "Deployment":
        return []
    pod = document["spec"]["template"]["spec"]
    found: list[dict[str, Any]] = pod.get("initContainers", []) + pod["containers"]
    return found


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matching = [o for o in objects if o["kind"] == kind]
    assert len(matching) == 1, f"expected one {kind}, found {len(matching)}"
    return matching[0]


def container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in containers(deployment) if c["name"] == name)


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A container's env entries by name (each {"value": ...} or {"valueFrom": ...})."""
    return {entry["name"]: entry for entry in container.get("env", [])}


def port_number(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port (a number or a container port's name) as a number."""
    if isinstance(port, int):
        return port
    return int(next(p["containerPort"] for p in container["ports"] if p.get("name") == port))
