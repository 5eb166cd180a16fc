"""The Kubernetes manifests in deploy/: schema-valid offline, every *_FILE a mounted file, and the
Secret the deploy guide creates is the one they use (test_kube_play.py runs them).

Schema validation: kubernetes-validate (pinned in constraints.txt) ships the JSON Schemas
generated from the Kubernetes OpenAPI definitions of each release; its "strict" schemas also
refuse unknown fields, so a misspelt key fails here rather than being dropped by the cluster.
No network and no cluster are needed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from marshmallow import ValidationError

from mit_fhir.config import SettingsSchema
from tests.deploy.guide import (
    SECRET_NAME,
    install_commands,
    secret_command,
    secret_keys,
    shell_blocks,
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# The oldest Kubernetes release the manifests promise to work on, and the newest the pinned
# validator knows.
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
SETTINGS = {f"MIT_FHIR_{name}" for name in SettingsSchema().fields}
SECRET_SETTINGS = {"MIT_FHIR_DATABASE_URL"}  # their values only by secretKeyRef
GUIDE_KEYS = secret_keys(secret_command())


def documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                docs.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return docs


DOCS = documents()
IDS = [name for name, _ in DOCS]


def find(kind: str, name: str) -> dict[str, Any]:
    found = [d for _, d in DOCS if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}"
    return found[0]


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, doc in DOCS:
        if doc["kind"] in ("Deployment", "Job"):
            yield name, doc["spec"]["template"]["spec"]


def containers() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for name, spec in pod_specs():
        for container in spec["containers"]:
            yield f"{name}/{container['name']}", container, spec


def test_the_expected_objects_are_there() -> None:
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for _, d in DOCS)
    assert kinds == [
        "ConfigMap/mit-fhir-config",
        "Deployment/mit-fhir-web",
        "Deployment/mit-fhir-worker",
        "Job/mit-fhir-migrate",
        "PodDisruptionBudget/mit-fhir-web",
        "Service/mit-fhir",
    ]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("name", "doc"), DOCS, ids=IDS)
def test_valid_against_the_kubernetes_schema(name: str, doc: dict[str, Any], version: str) -> None:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{name} (Kubernetes {version}): {exc.message} at {list(exc.path)}")


def test_the_validator_catches_a_misspelt_field() -> None:
    doc = find("Deployment", "mit-fhir-web")
    bad = yaml.safe_load(yaml.safe_dump(doc))
    bad["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[-1], strict=True)


def test_web_has_replicas_probes_and_a_service() -> None:
    web = find("Deployment", "mit-fhir-web")
    assert web["spec"]["replicas"] >= 2
    assert web["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    container = web["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["mit-fhir", "serve"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["port"] in port_names
    assert str(port_names["http"]) in container["command"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MIT_FHIR_SYNC_WORKER"] == "false", "the worker has its own Deployment"
    service = find("Service", "mit-fhir")
    labels = web["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert web["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in port_names
    pdb = find("PodDisruptionBudget", "mit-fhir-web")
    assert pdb["spec"]["selector"]["matchLabels"] == web["spec"]["selector"]["matchLabels"]


def test_worker_is_a_separate_deployment() -> None:
    worker = find("Deployment", "mit-fhir-worker")
    container = worker["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["mit-fhir", "worker"]
    web_labels = find("Deployment", "mit-fhir-web")["spec"]["template"]["metadata"]["labels"]
    worker_labels = worker["spec"]["template"]["metadata"]["labels"]
    service = find("Service", "mit-fhir")
    assert not service["spec"]["selector"].items() <= worker_labels.items(), (
        "the Service must not send requests to the worker"
    )
    assert web_labels != worker_labels
    env = {e["name"]: e.get("value") for e in container["env"]}
    port = int(env["MIT_FHIR_WORKER_METRICS_PORT"])
    assert port in [p["containerPort"] for p in container["ports"]]


@pytest.mark.parametrize(("name", "container", "spec"), list(containers()),
                         ids=[c[0] for c in containers()])
def test_every_container_is_locked_down_and_sized(
    name: str, container: dict[str, Any], spec: dict[str, Any]
) -> None:
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec.get("automountServiceAccountToken") is False
    ctx = container["securityContext"]
    assert ctx["runAsNonRoot"] is True
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"]["drop"] == ["ALL"]
    # A read-only root needs a writable /tmp (gunicorn's heartbeat files, Prometheus files).
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= container["resources"][kind].keys(), f"{name}: {kind}"
    image = container["image"]
    assert re.search(r":[\w.-]+$", image) and not image.endswith(":latest"), image


@pytest.mark.parametrize(("name", "container", "spec"), list(containers()),
                         ids=[c[0] for c in containers()])
def test_secrets_only_by_reference(
    name: str, container: dict[str, Any], spec: dict[str, Any]
) -> None:
    for env in container.get("env", []):
        if env["name"] in SECRET_SETTINGS:
            assert "value" not in env, f"{name}: {env['name']} given in clear"
            assert env["valueFrom"]["secretKeyRef"]["name"] == SECRET_NAME
    config = find("ConfigMap", "mit-fhir-config")["data"]
    assert not SECRET_SETTINGS & config.keys()
    for volume in spec.get("volumes", []):
        if "secret" in volume:
            assert volume["secret"]["secretName"] == SECRET_NAME
            assert volume["secret"]["defaultMode"] & 0o007 == 0, "secret files readable by all"


def settings_of(container: dict[str, Any]) -> dict[str, str]:
    """The MIT_FHIR_* values a container gets: its ConfigMaps (envFrom), then its own env."""
    settings: dict[str, str] = {}
    for source in container.get("envFrom", []):
        settings.update(find("ConfigMap", source["configMapRef"]["name"])["data"])
    for env in container.get("env", []):
        if "value" in env:
            settings[env["name"]] = env["value"]
    return settings


def file_problems(container: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """Every *_FILE setting that no mounted volume provides at that exact path, with the key."""
    problems = []
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for setting, path in sorted(settings_of(container).items()):
        if not setting.endswith("_FILE"):
            continue
        mounts = [m for m in container.get("volumeMounts", [])
                  if path.startswith(m["mountPath"].rstrip("/") + "/")]
        if len(mounts) != 1:
            problems.append(f"{setting}={path}: {len(mounts)} volume mounts hold it")
            continue
        mount, volume = mounts[0], volumes.get(mounts[0]["name"], {})
        relative = path[len(mount["mountPath"].rstrip("/")) + 1:]
        source = volume.get("secret") or volume.get("configMap")
        if source is None:
            problems.append(f"{setting}={path}: volume {mount['name']} is no Secret/ConfigMap")
            continue
        items = {i["path"]: i["key"] for i in source.get("items", [])}
        if "secret" in volume:
            keys = set(GUIDE_KEYS)
        else:
            keys = set(find("ConfigMap", source["name"])["data"])
        if not items:  # without items every key is a file named after it
            items = {key: key for key in keys}
        if relative not in items:
            problems.append(f"{setting}={path}: volume {mount['name']} projects no {relative}")
        elif items[relative] not in keys:
            problems.append(f"{setting}={path}: {items[relative]} is no key of "
                            f"{source.get('secretName') or source['name']}")
        if mount.get("readOnly") is not True:
            problems.append(f"{setting}={path}: mount {mount['mountPath']} is writable")
    return problems


@pytest.mark.parametrize(("name", "container", "spec"), list(containers()),
                         ids=[c[0] for c in containers()])
def test_every_file_setting_is_a_mounted_file(
    name: str, container: dict[str, Any], spec: dict[str, Any]
) -> None:
    """Else the process stops at start-up: "MIT_FHIR_..._FILE: no such file"."""
    assert file_problems(container, spec) == []


def test_the_file_check_finds_a_missing_projection() -> None:
    """The check above fails where the issue found the manifests failing: no metrics-token."""
    web = yaml.safe_load(yaml.safe_dump(find("Deployment", "mit-fhir-web")))
    spec = web["spec"]["template"]["spec"]
    secret = next(v for v in spec["volumes"] if "secret" in v)["secret"]
    secret["items"] = [i for i in secret["items"] if i["key"] != "metrics-token"]
    (problem,) = file_problems(spec["containers"][0], spec)
    assert "MIT_FHIR_METRICS_TOKEN_FILE" in problem and "projects no metrics-token" in problem
    secret["items"].append({"key": "metrics-tokens", "path": "metrics-token"})
    (problem,) = file_problems(spec["containers"][0], spec)
    assert "metrics-tokens is no key of mit-fhir-secrets" in problem


def test_the_secret_the_guide_creates_has_the_keys_the_pods_use() -> None:
    used = set()
    for _, container, spec in containers():
        used |= {e["valueFrom"]["secretKeyRef"]["key"] for e in container.get("env", [])
                 if "secretKeyRef" in e.get("valueFrom", {})}
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                used |= {i["key"] for i in volume["secret"].get("items", [])}
    assert used == set(GUIDE_KEYS), "the guide's kubectl command and the manifests disagree"
    assert GUIDE_KEYS["database-url"] == "literal"
    assert GUIDE_KEYS["ehr-private-key.pem"] == "file"


def test_every_pod_mounts_what_it_is_configured_with() -> None:
    """Web, worker and the migration Job all read the ConfigMap, so all mount the Secret."""
    for name, container, _ in containers():
        assert {s["configMapRef"]["name"] for s in container.get("envFrom", [])} == {
            "mit-fhir-config"}, name


def test_only_known_settings_are_set() -> None:
    """Every MIT_FHIR_* variable in the manifests is one the service accepts (else it refuses)."""
    names = set(find("ConfigMap", "mit-fhir-config")["data"])
    for _, container, _ in containers():
        names |= {e["name"] for e in container.get("env", [])}
    mit = {n for n in names if n.startswith("MIT_FHIR_")}
    assert mit - SETTINGS == set()
    assert names - mit <= set(), f"variables that are no MIT_FHIR_* setting: {names - mit}"


def test_the_guide_applies_files_that_exist_in_a_working_order() -> None:
    """The guide's kubectl lines name real files and objects: ConfigMap, Job, wait, workloads."""
    applied: list[str] = []
    for block in shell_blocks():
        for line in block.splitlines():
            words = line.split("#")[0].split()
            if words[:2] == ["kubectl", "apply"] and "-f" in words and words[-1] != "-":
                files = [words[i + 1] for i, w in enumerate(words) if w == "-f"]
                for name in files:
                    assert (ROOT / name).is_file(), f"the guide applies a missing {name}"
                applied += files
            if words[:2] == ["kubectl", "wait"]:
                find("Job", words[-1].removeprefix("job/"))
            if words[:3] == ["kubectl", "rollout", "status"]:
                find("Deployment", words[3].removeprefix("deployment/"))
    install = [w for line in install_commands() for w in line.split() if w.startswith("deploy/")]
    assert install == ["deploy/config.yaml", "deploy/migrate-job.yaml", "deploy/web.yaml",
                       "deploy/worker.yaml"]
    assert {f"deploy/{p.name}" for p in DEPLOY.glob("*.yaml")} <= set(applied)


@pytest.mark.parametrize(("name", "container", "spec"), list(containers()),
                         ids=[c[0] for c in containers()])
def test_every_value_is_one_the_settings_schema_accepts(
    name: str, container: dict[str, Any], spec: dict[str, Any]
) -> None:
    """A value the service would refuse at start-up (a misspelt choice, a bad number) fails
    here; the file checks are the test above, the secrets are not in the manifests."""
    raw = {k.removeprefix("MIT_FHIR_"): v for k, v in settings_of(container).items()}
    try:
        SettingsSchema().load(raw)
    except ValidationError as exc:
        pytest.fail(f"{name}: {exc.normalized_messages()}")
