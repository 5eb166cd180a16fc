"""Production HTTP server: gunicorn embedded, so `mit-fhir serve` needs no other command."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from mit_fhir.logs import gunicorn_logconfig

log = logging.getLogger("mit_fhir.server")


def prepare_metrics_dir() -> str | None:
    """Give prometheus_client's multiprocess mode an empty directory, before it is imported.

    PROMETHEUS_MULTIPROC_DIR, when set, is emptied (files of an earlier run would be added to
    this one's counters); otherwise a fresh directory is made under the temporary directory.
    The gunicorn workers and the sync worker inherit the variable.
    """
    if "prometheus_client" in sys.modules and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        log.debug("prometheus_client already imported: metrics stay per process")
        return None
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        for stale in Path(path).glob("*.db"):
            stale.unlink()
    else:
        path = tempfile.mkdtemp(prefix="mit-fhir-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        atexit.register(_remove_dir, path, os.getpid())
    return path


def _remove_dir(path: str, owner: int) -> None:
    # Forked workers inherit atexit handlers: only the process that made the directory removes it.
    if os.getpid() == owner:
        shutil.rmtree(path, ignore_errors=True)


class GunicornServer(BaseApplication):
    """Serves a ready Flask app; the app is built once (migrations run once) before forking."""

    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.application


class SyncSupervisor:
    """Runs `mit-fhir worker` beside the web workers and restarts it if it dies."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="sync-supervisor", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _watch(self) -> None:
        from mit_fhir import metrics  # not at module level: see prepare_metrics_dir

        while not self.stopping.is_set():
            self.process = subprocess.Popen([sys.executable, "-m", "mit_fhir", "worker"])
            while self.process.poll() is None and not self.stopping.wait(1.0):
                pass
            metrics.mark_dead(self.process.pid)
            if not self.stopping.is_set():
                log.warning("sync worker exited with %s; restarting", self.process.returncode)
                self.stopping.wait(2.0)

    def stop(self) -> None:
        self.stopping.set()
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()


def serve(app: Flask, host: str, port: int, workers: int, threads: int) -> None:
    """Run the app under gunicorn until interrupted (with the sync worker when configured)."""
    from mit_fhir import metrics  # not at module level: see prepare_metrics_dir

    store = app.extensions["mit_fhir"].store
    supervisor = (
        SyncSupervisor()
        if app.config.get("EHR_BASE_URL") and app.config.get("SYNC_WORKER")
        else None
    )

    def post_fork(_server: Any, _worker: Any) -> None:
        # Connections opened in the master must not be shared by the forked workers.
        store.engine.dispose(close=False)

    def child_exit(_server: Any, worker: Any) -> None:
        metrics.mark_dead(worker.pid)

    def when_ready(_server: Any) -> None:
        if supervisor:
            supervisor.start()

    def on_exit(_server: Any) -> None:
        if supervisor:
            supervisor.stop()

    GunicornServer(
        app,
        {
            **gunicorn_options(host, port, workers, threads, app.config["LOG_LEVEL"]),
            "post_fork": post_fork,
            "child_exit": child_exit,
            "when_ready": when_ready,
            "on_exit": on_exit,
        },
    ).run()


def gunicorn_options(host: str, port: int, workers: int, threads: int,
                     log_level: str = "INFO") -> dict[str, Any]:
    """gunicorn's settings for `serve` (the HTTP benchmark's bare endpoint uses them too)."""
    return {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        # JSON logs; the access line is the app's own (URL rules, never paths or queries).
        "accesslog": None,
        "logconfig_dict": gunicorn_logconfig(log_level),
        "timeout": 60,
        "graceful_timeout": 20,
    }
