"""Production HTTP server: gunicorn embedded, so `mit-fhir serve` needs no other command."""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication


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


def serve(app: Flask, host: str, port: int, workers: int, threads: int) -> None:
    """Run the app under gunicorn until interrupted."""
    store = app.extensions["mit_fhir"].store

    def post_fork(_server: Any, _worker: Any) -> None:
        # Connections opened in the master must not be shared by the forked workers.
        store.engine.dispose(close=False)

    GunicornServer(
        app,
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread" if threads > 1 else "sync",
            "post_fork": post_fork,
            "accesslog": "-",
            # Access log without the query string: search URLs can carry identifiers.
            "access_log_format": '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms',
            "timeout": 60,
            "graceful_timeout": 20,
        },
    ).run()
