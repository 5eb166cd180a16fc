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
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from flask import Flask

from mit_fhir import create_app
from tests.conftest import ROOT, service_env, service_log

BIN = Path(sys.executable).parent
STARTUP_SECONDS = 30
# Given to every service and app these suites start: development mode (loopback, no tokens).
SETTINGS: dict[str, Any] = {"AUTH": "none"}


def build_app(database_url: str, **settings: Any) -> Flask:
    """An in-process application on `database_url` with the suites' settings."""
    return create_app({**SETTINGS, "DATABASE_URL": database_url, **settings})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
            _wait_healthy(proc, base, log_path)
            yield base
        finally:
            _stop(proc)


def _wait_healthy(proc: subprocess.Popen[bytes], base: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"mit-fhir serve exited with {proc.returncode}: "
                               f"{log_path.read_text(errors='replace')[-2000:]}")
        try:
            if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"mit-fhir serve did not answer /healthz in {STARTUP_SECONDS}s")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
