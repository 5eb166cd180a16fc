"""deploy/ played with Debian's podman (`podman kube play`), as test_kube_play.py runs it.

A site's overlay is rendered with kubectl's built-in kustomize; the Secret comes from the deploy
guide's own command. What podman 4.3 (Debian bookworm) cannot play is done here in its place,
each named where it happens: a Job is played as a Pod of its template; `secretKeyRef` reads a
podman secret holding the Secret's `data` as JSON (podman's format; a Secret played by podman
4.3 is not readable by `secretKeyRef`, containers/podman#16269); secret volumes are written here,
key by key at the manifest's `items` paths with its `defaultMode` and the pod's `fsGroup`, as the
kubelet does (podman 4.3 writes them still base64-encoded and ignores `items` and modes); and
on host networking the containers' `ports` are left out (podman 4.3 would publish them).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.guide import ROOT, SECRET_NAME

DEPLOY = ROOT / "deploy"
IMAGE = "localhost/mit-fhir:test"
LOCK = Path("/tmp/mit-fhir-kube-play.lock")
# Debian's podman in this sandbox: runc, and limits the kernel lets a container have (the same
# as tests/deploy/test_container.sh passes with --ulimit; kube play has no such option).
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
"""
Doc = dict[str, Any]


class Podman:
    """podman with this test's containers.conf; every call bounded in time."""

    def __init__(self, workdir: Path) -> None:
        conf = workdir / "containers.conf"
        conf.write_text(CONTAINERS_CONF, encoding="utf-8")
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}

    def run(self, *args: str, stdin: str | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["podman", *args], input=stdin, capture_output=True, text=True,
                                env=self.env, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args[:3])}: exit {result.returncode}\n"
                                 f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
        return result


@contextlib.contextmanager
def one_at_a_time(seconds: float = 600) -> Iterator[None]:
    """The pods and the podman secret have fixed names: one run per machine at a time."""
    with LOCK.open("a") as lock:
        deadline = time.monotonic() + seconds
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, f"{LOCK} held for {seconds:.0f}s"
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def render(workdir: Path, kustomization: Doc) -> list[Doc]:
    """deploy/ with a site's overlay, as `kubectl kustomize` renders it."""
    for path in DEPLOY.glob("*.yaml"):
        shutil.copy(path, workdir / path.name)
    (workdir / "kustomization.yaml").write_text(yaml.safe_dump(kustomization), encoding="utf-8")
    result = subprocess.run(["kubectl", "kustomize", str(workdir)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def make_secret(command: str, workdir: Path, database_url: str) -> Doc:
    """Run the guide's command in `workdir` (which holds ./ehr-private-key.pem): the same words,
    with this run's database URL, and its output kept instead of sent to a cluster."""
    old_url = command.split("--from-literal=database-url='", 1)[1].split("'", 1)[0]
    assert command.rstrip().endswith("| kubectl apply -f -"), command
    script = (command.replace(old_url, database_url)
              .rstrip().removesuffix("kubectl apply -f -") + "cat > secret.yaml\n")
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=workdir, check=True,
                   timeout=60, capture_output=True)
    secret: Doc = yaml.safe_load((workdir / "secret.yaml").read_text(encoding="utf-8"))
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == SECRET_NAME
    return secret


def create_podman_secret(podman: Podman, secret: Doc) -> None:
    """The Secret's data where podman 4.3's secretKeyRef reads it."""
    podman.run("secret", "rm", SECRET_NAME, check=False)
    podman.run("secret", "create", SECRET_NAME, "-", stdin=json.dumps(secret["data"]))


def project_secrets(pod_spec: Doc, secret: Doc, workdir: Path) -> None:
    """Write each secret volume's items as the kubelet would and mount that directory."""
    group = int(pod_spec.get("securityContext", {}).get("fsGroup", 0))
    for volume in pod_spec.get("volumes", []):
        source = volume.get("secret")
        if source is None:
            continue
        assert source["secretName"] == secret["metadata"]["name"]
        directory = workdir / f"volume-{volume['name']}"
        directory.mkdir()
        items = source.get("items") or [{"key": k, "path": k} for k in secret["data"]]
        for item in items:
            assert item["key"] in secret["data"], f"the Secret has no key {item['key']}"
            path = directory / item["path"]
            path.write_bytes(base64.b64decode(secret["data"][item["key"]]))
            os.chown(path, 0, group)
            path.chmod(int(item.get("mode", source.get("defaultMode", 0o644))))
        directory.chmod(0o755)
        del volume["secret"]
        volume["hostPath"] = {"path": str(directory), "type": "Directory"}


def job_as_pod(job: Doc) -> Doc:
    """A Job's pod template as a Pod (podman 4.3 plays no Job)."""
    template = job["spec"]["template"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": job["metadata"]["name"],
                         "labels": template.get("metadata", {}).get("labels", {})},
            "spec": template["spec"]}


def pod_spec(doc: Doc) -> Doc:
    spec: Doc = doc["spec"] if doc["kind"] == "Pod" else doc["spec"]["template"]["spec"]
    return spec


def unpublish(doc: Doc) -> None:
    """Drop the containers' ports: podman 4.3 publishes every containerPort on the host, which
    host networking refuses (the ports are the host's own there). Probes naming a port by name
    get its number."""
    for container in pod_spec(doc)["containers"]:
        numbers = {p["name"]: p["containerPort"] for p in container.pop("ports", [])}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            get = container.get(probe, {}).get("httpGet")
            if get and get["port"] in numbers:
                get["port"] = numbers[get["port"]]


def readiness_url(doc: Doc) -> str:
    """Where the kubelet would probe the first container's readiness, on host networking."""
    container = pod_spec(doc)["containers"][0]
    get = container["readinessProbe"]["httpGet"]
    numbers = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    return f"http://127.0.0.1:{numbers.get(get['port'], get['port'])}{get['path']}"


def shipped(relative: str) -> list[tuple[str, str]]:
    """(kind, name) of the objects in one file of the repository (deploy/web.yaml)."""
    path = ROOT / relative
    assert path.parent == DEPLOY and path.is_file(), f"no manifest {relative}"
    return [(d["kind"], d["metadata"]["name"])
            for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def play(podman: Podman, docs: list[Doc], path: Path) -> None:
    """`podman kube play` on host networking (the services it talks to are on loopback)."""
    for doc in docs:
        if doc["kind"] != "ConfigMap":
            unpublish(doc)
    path.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    # --replace: pods of the same names left by a run that was killed are removed first.
    podman.run("kube", "play", "--replace", "--network", "host", "--quiet", str(path),
               timeout=180)


def down(podman: Podman, path: Path) -> None:
    if path.exists():
        podman.run("kube", "down", str(path), check=False, timeout=120)


def container_of(podman: Podman, pod_prefix: str, name: str) -> str:
    """The id of the container `name` in the pod whose name starts with pod_prefix."""
    out = podman.run("ps", "-a", "--format", "json").stdout
    for container in json.loads(out or "[]"):
        names = container.get("Names") or []
        if any(n.startswith(pod_prefix) and n.endswith(f"-{name}") for n in names):
            return str(container["Id"])
    raise AssertionError(f"no container {name} in a pod {pod_prefix}*: {out[:1500]}")


def logs(podman: Podman, container: str) -> str:
    result = podman.run("logs", "--tail", "60", container, check=False)
    return (result.stdout + result.stderr)[-6000:]
