"""A WSGI application served from a thread on loopback, on a free port: the test servers' base."""

from __future__ import annotations

import threading
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
