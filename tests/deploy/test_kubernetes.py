"""deploy/k8s: every manifest validates against Kubernetes' own schemas (the oldest and newest
versions we claim), the kustomization resolves, and the sidecar's invariants hold: only the
gateway is reachable, the rules ConfigMap is mounted where GATEWAY_RULES points, probes hit
real routes on the real port, one Secret feeds ELECTRIC_SECRET to both containers, and the
shutdown timings cover the gateway's snapshot drain."""

from __future__ import annotations

import posixpath
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.server.serve import GRACE
from gateway.settings import Settings
from tests.deploy.files import (
    DEPLOY,
    K8S,
    ROOT,
    container,
    containers,
    dockerfile_instructions,
    env_of,
    final_stage,
    kustomization,
    load_documents,
    one,
    port_number,
    render_kustomization,
)
from tests.gateway import GatewayFactory

# Native sidecar containers (Electric's restartPolicy: Always) are on by default from 1.29.
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")
SECRET_EXAMPLE = K8S / "secret.example.yaml"


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render_kustomization()


@pytest.fixture(scope="module")
def deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "Deployment")


def pod(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def manifest_files() -> list[str]:
    """Every Kubernetes object file here: not the kustomization, not the generators' inputs."""
    inputs = {f for g in kustomization()["configMapGenerator"] for f in g["files"]}
    names = (p.name for p in K8S.glob("*.yaml") if not p.name.endswith(".test.yaml"))
    return sorted(n for n in names if n != "kustomization.yaml" and n not in inputs)


def by_identity(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(documents, key=lambda d: (d["kind"], d["metadata"]["name"]))


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_validates_against_the_kubernetes_schema(
    objects: list[dict[str, Any]], version: str
) -> None:
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        ["ConfigMap", "Deployment", "NetworkPolicy", "PersistentVolumeClaim",
         "PodDisruptionBudget", "Service"]
    )  # fmt: skip
    for document in objects:
        kubernetes_validate.validate(document, version, strict=True)


@pytest.mark.parametrize("name", manifest_files())
def test_every_manifest_file_validates_against_the_kubernetes_schema(name: str) -> None:
    documents = load_documents(K8S / name)
    assert documents
    for version in KUBERNETES_VERSIONS:
        for document in documents:
            kubernetes_validate.validate(document, version, strict=True)


def test_the_schema_refuses_a_misspelt_field(deployment: dict[str, Any]) -> None:
    """The check can fail: strict validation forbids fields Kubernetes does not know."""
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    config = kustomization()
    inputs = [f for g in config["configMapGenerator"] for f in g["files"]]
    for name in [*config["resources"], *inputs]:
        assert (K8S / name).is_file(), f"kustomization.yaml names missing {name}"
    assert set(manifest_files()) - set(config["resources"]) == {SECRET_EXAMPLE.name}


def test_kubectl_kustomize_renders_the_same_objects(objects: list[dict[str, Any]]) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl on PATH to cross-check the rendering with kustomize itself")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=True
    )
    theirs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    assert by_identity(theirs) == by_identity(objects)


def test_the_rules_configmap_is_the_shipped_rules_and_passes_check() -> None:
    assert (K8S / "shape_rules.yaml").read_text() == (ROOT / "shape_rules.yaml").read_text()
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "check", str(K8S / "shape_rules.yaml")],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("folder", [K8S, DEPLOY / "rules"], ids=["k8s", "compose"])
def test_the_rule_tests_run_against_each_copy_of_the_rules(folder: Path) -> None:
    """Each copy (kustomize and the compose mount cannot reach the root file) finds the root's
    rule tests beside it, so `shape-gateway test deploy/k8s/shape_rules.yaml` tests the file
    that ships."""
    tests = folder / "shape_rules.test.yaml"
    assert tests.resolve() == (ROOT / "shape_rules.test.yaml").resolve()
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "test", str(folder / "shape_rules.yaml")],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed, 0 failed" in result.stdout


def test_rules_configmap_directory_is_mounted_where_gateway_rules_points(
    objects: list[dict[str, Any]], deployment: dict[str, Any]
) -> None:
    gateway = container(deployment, "gateway")
    rules_path = env_of(gateway)["GATEWAY_RULES"]["value"]
    (generator,) = kustomization()["configMapGenerator"]
    assert generator["options"]["disableNameSuffixHash"] is True  # updated in place: hot reload
    configmap = next(o for o in objects if o["kind"] == "ConfigMap")
    assert posixpath.basename(rules_path) in configmap["data"]
    volume = next(v for v in pod(deployment)["volumes"] if "configMap" in v)
    assert volume["configMap"]["name"] == configmap["metadata"]["name"] == generator["name"]
    mount = next(m for m in gateway["volumeMounts"] if m["name"] == volume["name"])
    assert mount["mountPath"] == posixpath.dirname(rules_path)
    assert "subPath" not in mount  # a subPath mount never sees ConfigMap updates
    image_env = [i for i in final_stage(dockerfile_instructions()) if i.keyword == "ENV"]
    assert any(f"GATEWAY_RULES={rules_path}" in i.arguments for i in image_env)


def test_only_the_gateway_port_is_in_the_service_and_the_network_policy(
    objects: list[dict[str, Any]], deployment: dict[str, Any]
) -> None:
    gateway, electric = container(deployment, "gateway"), container(deployment, "electric")
    gateway_port = port_number(gateway, "http")
    electric_ports = {p["containerPort"] for p in electric["ports"]}
    service = one(objects, "Service")
    targets = {port_number(gateway, p["targetPort"]) for p in service["spec"]["ports"]}
    assert targets == {gateway_port}
    assert not targets & electric_ports
    policy = one(objects, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    allowed = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert allowed == {gateway_port}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (
        service["spec"]["selector"],
        policy["spec"]["podSelector"]["matchLabels"],
        one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items()


def test_gateway_listens_on_its_default_port_and_reaches_electric_on_localhost(
    deployment: dict[str, Any],
) -> None:
    gateway = container(deployment, "gateway")
    env = env_of(gateway)
    assert int(env["GATEWAY_PORT"]["value"]) == port_number(gateway, "http") == Settings().port
    electric_port = port_number(container(deployment, "electric"), "electric")
    assert env["ELECTRIC_URL"]["value"] == f"http://localhost:{electric_port}"


async def test_probe_paths_answer_on_a_running_gateway(
    deployment: dict[str, Any], gateway_factory: GatewayFactory
) -> None:
    gateway = container(deployment, "gateway")
    live = await gateway_factory()
    for probe in ("livenessProbe", "readinessProbe"):
        http = gateway[probe]["httpGet"]
        assert port_number(gateway, http["port"]) == Settings().port
        async with live.request("GET", http["path"], token=None) as response:
            assert response.status == 200, (probe, http["path"])
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"


def _secret_refs(item: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        name: (
            entry["valueFrom"]["secretKeyRef"]["name"],
            entry["valueFrom"]["secretKeyRef"]["key"],
        )
        for name, entry in env_of(item).items()
        if "secretKeyRef" in entry.get("valueFrom", {})
    }


def test_both_containers_read_electric_secret_from_the_same_secret_key(
    deployment: dict[str, Any],
) -> None:
    gateway = _secret_refs(container(deployment, "gateway"))
    electric = _secret_refs(container(deployment, "electric"))
    assert gateway["ELECTRIC_SECRET"] == electric["ELECTRIC_SECRET"]
    assert "REDIS_URL" in gateway  # Redis is outside the pod, its URL (with password) a secret
    (example,) = load_documents(SECRET_EXAMPLE)
    for secret_name, key in [*gateway.values(), *electric.values()]:
        assert secret_name == example["metadata"]["name"]
        assert key in example["stringData"]


def test_the_secret_example_holds_only_placeholders_the_gateway_refuses_to_run_with() -> None:
    (example,) = load_documents(SECRET_EXAMPLE)
    assert all("REPLACE-ME" in value for value in example["stringData"].values())
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--port", "0"],
        env={"JWT_SECRET": example["stringData"]["JWT_SECRET"], "PATH": ""},
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode != 0
    assert "JWT_SECRET" in result.stderr


def test_every_container_runs_locked_down_with_requests_and_limits(
    deployment: dict[str, Any],
) -> None:
    spec = pod(deployment)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False  # no ELECTRIC_PORT=tcp://... from a Service
    for item in containers(deployment):
        context = item["securityContext"]
        assert context["runAsNonRoot"] is True, item["name"]
        assert context["runAsUser"] != 0
        assert context["readOnlyRootFilesystem"] is True, item["name"]
        assert context["allowPrivilegeEscalation"] is False, item["name"]
        assert context["capabilities"] == {"drop": ["ALL"]}, item["name"]
        for kind in ("requests", "limits"):
            assert set(item["resources"][kind]) == {"cpu", "memory"}, (item["name"], kind)


def test_gateway_runs_as_the_image_user(deployment: dict[str, Any]) -> None:
    (user,) = [i.arguments for i in final_stage(dockerfile_instructions()) if i.keyword == "USER"]
    context = container(deployment, "gateway")["securityContext"]
    assert f"{context['runAsUser']}:{context['runAsGroup']}" == user


def test_shutdown_leaves_room_for_the_snapshot_drain_with_electric_stopping_last(
    deployment: dict[str, Any],
) -> None:
    spec = pod(deployment)
    gateway = container(deployment, "gateway")
    command = gateway["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = int(command[1])
    electric_shutdown = 15  # seconds Electric is given once the gateway has exited
    assert spec["terminationGracePeriodSeconds"] >= pre_stop + GRACE + electric_shutdown
    # Electric is a native sidecar: started before the gateway, stopped after it exits.
    electric = next(c for c in spec.get("initContainers", []) if c["name"] == "electric")
    assert electric["restartPolicy"] == "Always"
    assert "startupProbe" in electric


def test_electric_keeps_its_storage_on_a_persistent_volume(
    objects: list[dict[str, Any]], deployment: dict[str, Any]
) -> None:
    electric = container(deployment, "electric")
    storage = env_of(electric)["ELECTRIC_STORAGE_DIR"]["value"]
    mount = next(m for m in electric["volumeMounts"] if m["mountPath"] == storage)
    volume = next(v for v in pod(deployment)["volumes"] if v["name"] == mount["name"])
    claim = one(objects, "PersistentVolumeClaim")
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    # One ReadWriteOnce volume: the old pod must stop before the new one mounts it.
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert deployment["spec"]["strategy"]["type"] == "Recreate"


def test_pod_disruption_budget_never_blocks_a_drain_of_the_single_pod(
    objects: list[dict[str, Any]], deployment: dict[str, Any]
) -> None:
    budget = one(objects, "PodDisruptionBudget")["spec"]
    assert deployment["spec"]["replicas"] == 1
    assert "minAvailable" not in budget
    assert budget["maxUnavailable"] >= 1
