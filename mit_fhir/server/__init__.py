"""Production HTTP server: gunicorn's master with uvicorn workers, so slow clients hold no thread.

`mit-fhir serve` is the one command: gunicorn's master forks the workers and keeps its hooks
(post_fork disposes the database engine, child_exit marks Prometheus multiprocess files dead,
when_ready starts the sync supervisor, graceful shutdown on SIGTERM). Each worker is uvicorn's
event loop (`uvicorn-worker`), which reads every request whole, within the deadlines and size
cap of `server_limits`, before a2wsgi hands it to one of `threads` threads running Flask.

Why this and not another fix (issue 12, item 4): gunicorn's own gthread worker gives a thread
to a connection as soon as it is accepted and reads the request in it, and gunicorn's docs say
its sync/gthread workers assume a buffering proxy in front. A proxy (nginx) in the container
would hide the client's address from development mode's loopback check and be absent from
`make run`; a single-process server (waitress) or one with its own process manager (granian,
hypercorn) would drop gunicorn's hooks that the metrics, the database engine and the sync
worker rely on. uvicorn keeps the master and the client's own address, and needs only a
header deadline (which it lacks, so `DeadlineH11Protocol` adds it) and a body buffer.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from mit_fhir.server.limits import BufferedWSGI, ReadLimits, protocol_class
from mit_fhir.web.logs import gunicorn_logconfig

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

    def __init__(self, app: Flask, options: dict[str, Any],
                 limits: ReadLimits | None = None) -> None:
        self.application = app
        self.options = options
        self.limits = limits or ReadLimits()
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> BufferedWSGI:
        return BufferedWSGI(self.application, self.options["threads"], self.limits)


def worker_class(limits: ReadLimits, graceful_timeout: float) -> type:
    """uvicorn's gunicorn worker, configured: the h11 protocol with the header deadline."""
    from uvicorn_worker import UvicornWorker

    return type("MitFhirWorker", (UvicornWorker,), {"CONFIG_KWARGS": {
        "loop": "asyncio",
        "http": protocol_class(limits),
        "lifespan": "off",
        # The app logs each request itself, by URL rule: uvicorn's line has paths and queries.
        "access_log": False,
        # REMOTE_ADDR is the peer's own address, as under gthread: development mode's loopback
        # check must not be steered by an X-Forwarded-For header.
        "proxy_headers": False,
        # Requests still running at shutdown get this long, within gunicorn's graceful_timeout.
        "timeout_graceful_shutdown": max(1.0, graceful_timeout - 5),
    }})


class SyncSupervisor:
    """Runs `mit-fhir worker` (schedules; sync when an EHR is set) beside the web workers and
    restarts it if it dies."""

    def __init__(self, mark_dead: Callable[[int | None], None]) -> None:
        self.mark_dead = mark_dead  # metrics.mark_dead, imported by `serve`
        self.process: subprocess.Popen[bytes] | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="sync-supervisor", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _watch(self) -> None:
        while not self.stopping.is_set():
            self.process = subprocess.Popen([sys.executable, "-m", "mit_fhir", "worker"])
            while self.process.poll() is None and not self.stopping.wait(1.0):
                pass
            self.mark_dead(self.process.pid)
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


def serve(app: Flask, host: str, port: int, workers: int, threads: int,
          control_socket: Path | None = None) -> None:
    """Run the app under gunicorn until interrupted (with the worker unless SYNC_WORKER=false)."""
    # This module's one function-level import, and it cannot move up: mit_fhir.metrics imports
    # prometheus_client, which reads PROMETHEUS_MULTIPROC_DIR once, when first imported; at
    # module level it would come with `from mit_fhir.server import prepare_metrics_dir`, before
    # that function sets the directory, and each gunicorn worker would count alone.
    from mit_fhir import metrics

    store = app.extensions["mit_fhir"].store
    # The worker runs the assessment schedules too, so it is started without an EHR as well.
    supervisor = SyncSupervisor(metrics.mark_dead) if app.config.get("SYNC_WORKER") else None

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

    limits = ReadLimits.from_config(app.config)
    GunicornServer(
        app,
        {
            **gunicorn_options(host, port, workers, threads, app.config["LOG_LEVEL"], limits,
                               control_socket),
            "post_fork": post_fork,
            "child_exit": child_exit,
            "when_ready": when_ready,
            "on_exit": on_exit,
        },
        limits,
    ).run()


GRACEFUL_TIMEOUT = 20


def control_options(path: Path | None) -> dict[str, Any]:
    """gunicorn's control socket: off, or at a path this instance owns.

    gunicorn (25.1 on) opens it by default at $XDG_RUNTIME_DIR/gunicorn.ctl or
    ~/.gunicorn/gunicorn.ctl: one path per user and host, so a second instance took the first
    one's socket over (and removed it on exit), and `gunicornc` then steered the wrong one.
    """
    if path is None:
        return {"control_socket_disable": True}
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return {"control_socket": str(path), "control_socket_disable": False}


def gunicorn_options(host: str, port: int, workers: int, threads: int,
                     log_level: str = "INFO",
                     limits: ReadLimits | None = None,
                     control_socket: Path | None = None) -> dict[str, Any]:
    """gunicorn's settings for `serve` (the HTTP benchmark's bare endpoint uses them too)."""
    return {
        **control_options(control_socket),
        "bind": f"{host}:{port}",
        "workers": workers,
        # Not gunicorn's: a2wsgi's pool in each worker (GunicornServer.load reads it).
        "threads": threads,
        "worker_class": worker_class(limits or ReadLimits(), GRACEFUL_TIMEOUT),
        # JSON logs; the access line is the app's own (URL rules, never paths or queries).
        "accesslog": None,
        "logconfig_dict": gunicorn_logconfig(log_level),
        "timeout": 60,
        "graceful_timeout": GRACEFUL_TIMEOUT,
    }
