"""Real FHIR R4 servers on loopback for the sync tests: Medplum (in memory) and SEKMET (SQLite).

`make servers` installs both (see tests/servers/servers.mk and README.md). Each server runs as a
child process on a free 127.0.0.1 port in its own working directory; `start()` waits until
`GET [base]/metadata` answers 200 and fails loudly (never skips) if it does not.

Use the fixtures from a test module by binding them to module names (pytest finds fixtures
among a module's globals; an assignment, unlike an import, keeps ruff's F401/F811 quiet)::

    from tests.servers import fixtures

    fhir_server = fixtures.fhir_server  # or medplum_server / sekmet_server

or for the whole suite with ``pytest_plugins = ["tests.servers.fixtures"]`` in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

HERE = Path(__file__).resolve().parent
MEDPLUM_DIR = HERE / "medplum"
MEDPLUM_NODE = MEDPLUM_DIR / "node_modules" / ".bin" / "node"
MEDPLUM_SCRIPT = MEDPLUM_DIR / "server.mjs"
STARTUP_TIMEOUT = float(os.environ.get("MIT_FHIR_SERVER_STARTUP_TIMEOUT", "60"))
INSTALL_HINT = "run `make servers` (tests/servers/servers.mk) to install the test FHIR servers"


class ServerStartError(RuntimeError):
    """The server is not installed, exited early, or did not answer /metadata in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class FhirTestServer:
    """A FHIR server child process on 127.0.0.1:<port>, run in `workdir`.

    `start()` spawns it and polls `[base]/metadata`; `stop()` sends SIGTERM, then SIGKILL after
    `stop_timeout` seconds; `restart()` stops and starts it again on the same port in the same
    working directory. Output (stdout and stderr) goes to `<workdir>/server.log`.
    """

    name: ClassVar[str] = "fhir"
    keeps_data_across_restart: ClassVar[bool] = False

    def __init__(
        self,
        workdir: Path | None = None,
        port: int | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
        stop_timeout: float = 10.0,
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix=f"mit-fhir-{self.name}-")) if workdir is None else workdir
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None
        self.log_path = self.workdir / "server.log"

    # ------------------------------------------------------------------ to override

    @property
    def base_url(self) -> str:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def check_installed(self) -> None:
        """Raise ServerStartError with an install hint if the server's files are missing."""

    def prepare(self) -> None:
        """Write configuration into `workdir` before each start."""

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    # ------------------------------------------------------------------ life cycle

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> FhirTestServer:
        if self.running:
            return self
        self.check_installed()
        self.prepare()
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.name} on port {self.port}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.workdir,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready(started)
        except ServerStartError:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _wait_ready(self, started: float) -> None:
        deadline = started + self.startup_timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            assert self.process is not None
            code = self.process.poll()
            if code is not None:
                raise ServerStartError(
                    f"{self.name} server exited with code {code} before it was ready "
                    f"({self.command()[0]}).\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.base_url}/metadata", timeout=2) as resp:
                    if resp.status == 200:
                        body = json.loads(resp.read())
                        if body.get("resourceType") == "CapabilityStatement":
                            return
                        last_error = f"/metadata returned {body.get('resourceType')}"
            except (OSError, urllib.error.URLError, ValueError) as exc:
                last_error = str(exc)
            time.sleep(0.2)
        raise ServerStartError(
            f"{self.name} server did not answer {self.base_url}/metadata within "
            f"{self.startup_timeout:.0f} s (last error: {last_error}).\n{self.log_tail()}"
        )

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=self.stop_timeout)

    def restart(self) -> FhirTestServer:
        """Stop, then start again on the same port and in the same working directory."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server and remove the working directory if this object created it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> FhirTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return f"(no log at {self.log_path})"
        return f"last lines of {self.log_path}:\n" + "\n".join(text[-lines:])

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.base_url} {state}>"


class MedplumServer(FhirTestServer):
    """Medplum 5.2 FhirRouter + MemoryRepository behind tests/servers/medplum/server.mjs.

    Base URL http://127.0.0.1:<port> (no path). Data lives in memory only: `restart()` gives an
    empty server.
    """

    name = "medplum"
    keeps_data_across_restart = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def check_installed(self) -> None:
        missing = [p for p in (MEDPLUM_NODE, MEDPLUM_SCRIPT) if not p.exists()]
        missing += [
            MEDPLUM_DIR / "node_modules" / "@medplum" / pkg
            for pkg in ("fhir-router", "core", "definitions")
            if not (MEDPLUM_DIR / "node_modules" / "@medplum" / pkg).is_dir()
        ]
        if missing:
            raise ServerStartError(
                f"Medplum test server is not installed (missing {', '.join(map(str, missing))}): "
                f"{INSTALL_HINT}"
            )

    def command(self) -> list[str]:
        port = str(self.port)
        return [str(MEDPLUM_NODE), str(MEDPLUM_SCRIPT), "--port", port, "--host", "127.0.0.1"]


def sekmet_executable() -> Path:
    """The `sekmet` script next to the running interpreter (the project venv), else on PATH."""
    beside = Path(sys.executable).parent / "sekmet"
    if beside.exists():
        return beside
    found = shutil.which("sekmet")
    return Path(found) if found else beside


class SekmetServer(FhirTestServer):
    """SEKMET (PyPI sekmet-fhir): FastAPI + SQLite, base URL http://127.0.0.1:<port>/fhir.

    Runs `sekmet serve` in `workdir` with a settings.yaml written there; the database is
    `<workdir>/data/sekmet.db`, so `restart()` keeps the data. The workflow simulator (which
    reacts to MedicationRequest, ServiceRequest, Task, Appointment and Claim writes by creating
    resources of its own) is switched off.
    """

    name = "sekmet"
    keeps_data_across_restart = True

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    @property
    def database(self) -> Path:
        return self.workdir / "data" / "sekmet.db"

    def check_installed(self) -> None:
        exe = sekmet_executable()
        if not exe.exists():
            raise ServerStartError(
                f"SEKMET is not installed (no {exe}; pip package sekmet-fhir): {INSTALL_HINT}"
            )

    def settings(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "host": "127.0.0.1",
            "port": self.port,
            "data_dir": "data",
            "simulator": {"enabled": False},
            "validation": {"inbound": "strict"},
        }

    def prepare(self) -> None:
        # JSON is valid YAML, so no YAML writer is needed here.
        (self.workdir / "settings.yaml").write_text(json.dumps(self.settings(), indent=2) + "\n")

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        for key in list(env):
            if key.startswith("SEKMET_"):  # settings.yaml, not the caller's environment
                del env[key]
        return env

    def command(self) -> list[str]:
        return [
            str(sekmet_executable()),
            "serve",
            "--config",
            str(self.workdir / "settings.yaml"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]


# ---------------------------------------------------------------------- pytest fixtures

SERVER_CLASSES: dict[str, type[FhirTestServer]] = {"medplum": MedplumServer, "sekmet": SekmetServer}


def _run_server(cls: type[FhirTestServer], workdir: Path) -> Iterator[FhirTestServer]:
    server = cls(workdir=workdir)
    try:
        server.start()
    except ServerStartError as exc:
        server.stop()
        pytest.fail(f"could not start the {cls.name} FHIR test server: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def medplum_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirTestServer]:
    """A running MedplumServer for the whole session (in memory; shared by all tests)."""
    yield from _run_server(MedplumServer, tmp_path_factory.mktemp("medplum"))


@pytest.fixture(scope="session")
def sekmet_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirTestServer]:
    """A running SekmetServer for the whole session (SQLite in its temp working directory)."""
    yield from _run_server(SekmetServer, tmp_path_factory.mktemp("sekmet"))


@pytest.fixture(scope="session", params=list(SERVER_CLASSES), ids=list(SERVER_CLASSES))
def fhir_server(request: pytest.FixtureRequest) -> FhirTestServer:
    """Each real FHIR server in turn (test ids end in [medplum] / [sekmet])."""
    server: FhirTestServer = request.getfixturevalue(f"{request.param}_server")
    return server


@pytest.fixture(params=list(SERVER_CLASSES), ids=list(SERVER_CLASSES))
def own_fhir_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FhirTestServer]:
    """Each real FHIR server in turn, started for one test (fault tests stop and stall it)."""
    server = SERVER_CLASSES[request.param](tmp_path / "ehr")
    server.start()
    yield server
    server.close()
