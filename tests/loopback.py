"""Loopback serving for tests and benchmarks: a WSGI app in a thread, and waiting for a
service subprocess to answer /healthz."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Any


class LoopbackServer:
    """Werkzeug's threaded server for one app; `start()` returns the port it got."""

    def __init__(self, app: Any, name: str, host: str = "127.0.0.1") -> None:
        self.app = app
        self.name = name
        self.host = host
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        from werkzeug.serving import make_server

        self._server = make_server(self.host, 0, self.app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True, name=self.name)
        self._thread.start()
        return int(self._server.server_port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def wait_healthy(proc: subprocess.Popen[bytes], base: str, log: Path, seconds: float) -> None:
    """Until GET {base}/healthz answers 200; RuntimeError (with the log's tail) if the process
    exits first or `seconds` pass."""
    import requests

    deadline = time.monotonic() + seconds
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0] if isinstance(proc.args, list) else proc.args} "
                               f"exited with {proc.returncode}: "
                               f"{log.read_text(errors='replace')[-2000:]}")
        try:
            if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{base} did not answer /healthz in {seconds:.0f}s")
        time.sleep(0.2)
