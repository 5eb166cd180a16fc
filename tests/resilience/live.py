"""The one place the resilience and property suites start the service or build an app.

`live_service(tmp, database_url, **settings)` starts `mit-fhir serve` (gunicorn) on loopback as a
subprocess in its own session, waits for /healthz, yields its base URL and always stops it
(SIGTERM, then SIGKILL). Extra settings become MIT_FHIR_* variables; the environment's own
MIT_FHIR_* variables are dropped. `build_app(database_url, **settings)` is the in-process twin.
Settings every test service needs (e.g. development-mode auth) belong in SETTINGS.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask

from mit_fhir.app import create_app
from tests.conftest import ROOT, service_env, service_log
from tests.loopback import wait_healthy
from tests.servers.fixtures import free_port

BIN = Path(sys.executable).parent
STARTUP_SECONDS = 30
# Given to every service and app these suites start: development mode (loopback, no tokens).
SETTINGS: dict[str, Any] = {"AUTH": "none"}


def build_app(database_url: str, **settings: Any) -> Flask:
    """An in-process application on `database_url` with the suites' settings."""
    return create_app({**SETTINGS, "DATABASE_URL": database_url, **settings})




def live_env(database_url: str, **settings: Any) -> dict[str, str]:
    """The subprocess environment (tests.conftest.service_env) with the suites' settings."""
    merged = {**SETTINGS, "DATABASE_URL": database_url, **settings}
    return service_env(**{k: str(v) for k, v in merged.items()})


@contextmanager
def live_service(
    tmp: Path, database_url: str, workers: int = 2, **settings: Any
) -> Iterator[str]:
    """Serve the app with gunicorn on 127.0.0.1; yield its base URL; stop it afterwards."""
    port = free_port()
    log_path = service_log(f"resilience-serve-{port}")  # scanned for patient data
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(BIN / "mit-fhir"), "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(workers)],
            env=live_env(database_url, **settings), cwd=ROOT, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(proc, base, log_path, STARTUP_SECONDS)
            yield base
        finally:
            _stop(proc)




def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
