"""deploy/ run for real: the migration Job, web and worker under `podman kube play`.

Against the machine's PostgreSQL (a database made for the run and dropped after it), a loopback
identity provider (tests/security/issuer.py), a real FHIR server as the EHR (Medplum,
tests/servers) behind a SMART Backend Services token endpoint (tests/ehr/token_server.py). The
Secret is made by the deploy guide's command; the overlay sets only what a site sets. Runs in
the PostgreSQL pass of `make test` (once per run), as root with podman, runc and catatonit
(`make container-deps`); it reuses the image tests/deploy/test_container.sh builds, or runs that
script to build it. kube_play.py says what podman 4.3 cannot play and what is done instead.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import FHIR_JSON, POSTGRES_URL, database_kind, sample
from tests.deploy import kube_play as kp
from tests.deploy.guide import install_commands, secret_command
from tests.ehr.token_server import CLIENT_ID, TokenServer
from tests.security.issuer import Issuer
from tests.servers import fixtures
from tests.servers.fixtures import FhirTestServer, free_port
from tests.sync.rig import ehr_resources

medplum_server = fixtures.medplum_server

CONTAINER_SCRIPT = Path(__file__).with_name("test_container.sh")
TOOLS = ("podman", "kubectl", "catatonit")
PATIENT = f"kube-{uuid.uuid4().hex[:12]}"


def _missing() -> list[str]:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None
               and not Path(f"/usr/libexec/podman/{tool}").exists()]
    if os.geteuid() != 0:
        missing.append("root")
    return missing


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A new PostgreSQL database, dropped afterwards (whatever still holds connections)."""
    name = f"mitfhir_kube_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(POSTGRES_URL).set(host="127.0.0.1", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _ehr_key(directory: Path) -> dict[str, Any]:
    """The worker's Backend Services key: ./ehr-private-key.pem, and its public JWKS."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (directory / "ehr-private-key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    public: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    # The key id the ConfigMap names (MIT_FHIR_EHR_KEY_ID): the overlay leaves it as shipped.
    public.update(kid="mit-fhir-2026", alg="RS384", use="sig")
    return {"keys": [public]}


def _overlay(web_port: int, worker_port: int, settings: dict[str, str]) -> dict[str, Any]:
    """What a site's kustomization sets: its image, URLs, ports and (here) one web replica."""
    def json_patch(kind: str, name: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        return {"target": {"kind": kind, "name": name}, "patch": json.dumps(ops)}

    web = "/spec/template/spec/containers/0"
    shipped = next(d for d in yaml.safe_load_all((kp.DEPLOY / "web.yaml").read_text())
                   if d["kind"] == "Deployment")
    port_at = shipped["spec"]["template"]["spec"]["containers"][0]["command"].index("--port") + 1
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": ["config.yaml", "migrate-job.yaml", "web.yaml", "worker.yaml"],
        "images": [{"name": "registry.example.org/mit-fhir", "newName": "localhost/mit-fhir",
                    "newTag": "test"}],
        "patches": [
            json_patch("ConfigMap", "mit-fhir-config",
                       [{"op": "add", "path": f"/data/{k}", "value": v}
                        for k, v in settings.items()]),
            json_patch("Deployment", "mit-fhir-web", [
                {"op": "replace", "path": "/spec/replicas", "value": 1},
                {"op": "replace", "path": f"{web}/command/{port_at}", "value": str(web_port)},
                {"op": "replace", "path": f"{web}/ports/0/containerPort", "value": web_port}]),
            json_patch("Deployment", "mit-fhir-worker", [
                {"op": "replace", "path": f"{web}/env/1",
                 "value": {"name": "MIT_FHIR_WORKER_METRICS_PORT", "value": str(worker_port)}},
                {"op": "replace", "path": f"{web}/ports/0/containerPort",
                 "value": worker_port}]),
        ],
    }


def _wait(predicate: Any, seconds: float, what: str, on_fail: Any = None) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if predicate():
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds:.0f}s waiting for {what}\n"
                        f"{on_fail() if on_fail else ''}")
        time.sleep(0.5)


def _install(podman: kp.Podman, lines: list[str], rendered: dict[tuple[str, str], Any],
             secret: dict[str, Any], workdir: Path, played: list[Path]) -> None:
    """Each kubectl line of the guide done with podman; a line it cannot do fails the test."""
    config: dict[str, Any] | None = None
    for line in lines:
        words = shlex.split(line.split("#")[0])
        if words[:2] == ["kubectl", "apply"]:
            files = [words[i + 1] for i, word in enumerate(words) if word == "-f"]
            for key in (k for f in files for k in kp.shipped(f)):
                doc = rendered[key]
                if key[0] == "ConfigMap":
                    config = doc
                    continue
                if key[0] not in ("Job", "Deployment"):
                    continue  # Service, PodDisruptionBudget: nothing podman plays
                assert config is not None, "the guide applies a workload before its ConfigMap"
                doc = kp.job_as_pod(doc) if key[0] == "Job" else doc
                (workdir / key[1]).mkdir()
                kp.project_secrets(kp.pod_spec(doc), secret, workdir / key[1])
                played.append(workdir / f"{key[1]}.yaml")
                kp.play(podman, [config, doc], played[-1])
        elif words[:3] == ["kubectl", "wait", "--for=condition=complete"]:
            name = words[-1].removeprefix("job/")
            spec = rendered[("Job", name)]["spec"]["template"]["spec"]
            container = kp.container_of(podman, name, spec["containers"][0]["name"])
            code = podman.run("wait", container, timeout=180).stdout.strip()
            assert code == "0", f"job {name} exited {code}:\n{kp.logs(podman, container)}"
        elif words[:3] == ["kubectl", "rollout", "status"]:
            name = words[3].removeprefix("deployment/")
            doc = rendered[("Deployment", name)]
            url = kp.readiness_url(doc)
            container = kp.container_of(podman, name, kp.pod_spec(doc)["containers"][0]["name"])
            _wait(lambda u=url: requests.get(u, timeout=3).status_code == 200, 90,
                  f"{url} 200", lambda c=container: kp.logs(podman, c))
        else:
            pytest.fail(f"the test cannot play the guide's line: {line}")


def _ensure_image(podman: kp.Podman) -> None:
    if podman.run("image", "exists", kp.IMAGE, check=False).returncode == 0:
        return
    result = subprocess.run(["bash", str(CONTAINER_SCRIPT)], capture_output=True, text=True,
                            timeout=1500, check=False, stdin=subprocess.DEVNULL,
                            env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]


@pytest.mark.slow
def test_the_manifests_run_under_podman_kube_play(
    medplum_server: FhirTestServer, postgres_database: str, tmp_path: Path
) -> None:
    if database_kind() != "postgresql":
        pytest.skip("runs once per `make test`, in the PostgreSQL pass")
    missing = _missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs {', '.join(missing)} (make container-deps)")
        pytest.skip(f"needs {', '.join(missing)} (make container-deps)")
    with kp.one_at_a_time():
        _run(medplum_server, postgres_database, tmp_path)


def _run(medplum_server: FhirTestServer, postgres_database: str, tmp_path: Path) -> None:
    started = time.monotonic()
    podman = kp.Podman(tmp_path)
    _ensure_image(podman)
    web_port, worker_port = free_port(), free_port()
    base = f"http://127.0.0.1:{web_port}"
    secrets_dir = tmp_path / "site"
    secrets_dir.mkdir()
    token_server = TokenServer(_ehr_key(secrets_dir))
    issuer = Issuer(audience=f"{base}/fhir")
    played: list[Path] = []
    try:
        token_server.start()
        issuer.start()
        settings = {
            "MIT_FHIR_BASE_URL": f"{base}/fhir",
            "MIT_FHIR_AUTH_ISSUER": issuer.url,
            "MIT_FHIR_EHR_BASE_URL": medplum_server.base_url,
            "MIT_FHIR_EHR_TOKEN_URL": token_server.token_url,
            "MIT_FHIR_EHR_CLIENT_ID": CLIENT_ID,
            "MIT_FHIR_SYNC_POLL_INTERVAL": "0.2",
        }
        (tmp_path / "overlay").mkdir()
        docs = kp.render(tmp_path / "overlay", _overlay(web_port, worker_port, settings))
        by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}

        # The Secret, from the guide's command; then what podman needs of it.
        secret = kp.make_secret(secret_command(), secrets_dir, postgres_database)
        kp.create_podman_secret(podman, secret)

        # The guide's first installation, line by line.
        _install(podman, install_commands(), by_kind, secret, tmp_path, played)
        engine = create_engine(postgres_database)
        with engine.connect() as conn:  # the Job's migrations, in the run's database
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        engine.dispose()
        web = kp.container_of(podman, "mit-fhir-web", "mit-fhir")
        worker = kp.container_of(podman, "mit-fhir-worker", "worker")

        def web_logs() -> str:
            return kp.logs(podman, web)

        _wait(lambda: requests.get(f"{base}/readyz", timeout=3).status_code == 200, 90,
              "/readyz 200", web_logs)
        ready = requests.get(f"{base}/readyz", timeout=5).json()
        assert ready["database"] == "ok" and ready["migrations"] == "ok", ready
        print(f"kube play: ready {time.monotonic() - started:.0f}s after the start")

        # /app is configured (403 for an EHR it does not know, not 503 "not configured").
        resp = requests.get(f"{base}/app/launch", params={"iss": "https://elsewhere.example"},
                            timeout=10)
        assert resp.status_code == 403, resp.text[:300]

        # A submission scored, with a token from the identity provider.
        issuer.register("kube-test", "system/*.cruds")
        token = issuer.token("kube-test")
        auth = {"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON}
        qr = {**sample("phq-9"), "subject": {"reference": f"Patient/{PATIENT}"}}
        resp = requests.post(f"{base}/fhir/QuestionnaireResponse", data=json.dumps(qr),
                             headers=auth, timeout=30)
        assert resp.status_code == 201, resp.text[:500]
        created = resp.json()["id"]
        obs = requests.get(f"{base}/fhir/Observation",
                           params={"derived-from": f"QuestionnaireResponse/{created}"},
                           headers=auth, timeout=30).json()
        total = [e["resource"] for e in obs.get("entry", [])
                 if e["resource"]["code"]["coding"][0]["code"] == "44261-6"]
        expected = json.loads((Path(__file__).parents[1] / "data" / "samples" / "phq-9" /
                               "complete.expected.json").read_text())["phq-9-total"]
        assert [o["valueQuantity"]["value"] for o in total] == [expected]
        print(f"kube play: first scored submission {time.monotonic() - started:.0f}s")

        # /metrics with the token the pod reads from the mounted Secret.
        metrics_token = podman.run("exec", web, "cat",
                                   "/var/run/secrets/mit-fhir/metrics-token").stdout.strip()
        assert metrics_token
        assert requests.get(f"{base}/metrics", timeout=10).status_code == 401
        resp = requests.get(f"{base}/metrics", timeout=10,
                            headers={"Authorization": f"Bearer {metrics_token}"})
        assert resp.status_code == 200 and "mit_fhir_http_requests_total" in resp.text

        # A medication plan, delivered by the worker pod with the Secret's private key.
        plan = {**sample("medication-plan"), "subject": {"reference": f"Patient/{PATIENT}"}}
        resp = requests.post(f"{base}/fhir/QuestionnaireResponse", data=json.dumps(plan),
                             headers=auth, timeout=30)
        assert resp.status_code == 201, resp.text[:500]
        def delivered() -> set[str]:  # the medicines' RxNorm codes the EHR holds
            return {c["code"] for r in ehr_resources(medplum_server.base_url,
                                                     "MedicationRequest", PATIENT)
                    for c in r["medicationCodeableConcept"]["coding"]}

        # 38404 topiramate: the first medicine of the plan's sample.
        _wait(lambda: "38404" in delivered(), 90, "the worker to deliver the MedicationRequest",
              lambda: kp.logs(podman, worker))
        assert token_server.issued >= 1, "the worker reached the EHR without a token"
        resp = requests.get(f"http://127.0.0.1:{worker_port}/metrics", timeout=10)
        assert resp.status_code == 200 and "mit_fhir_ehr_token_refreshes_total" in resp.text
        print(f"kube play: passed in {time.monotonic() - started:.0f}s")
    finally:
        for path in reversed(played):
            kp.down(podman, path)
        podman.run("secret", "rm", "mit-fhir-secrets", check=False)
        issuer.stop()
        token_server.stop()
