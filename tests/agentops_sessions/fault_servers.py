"""AgentOps endpoints that misbehave, on loopback: a black hole, one failing with 500, a slow one.

Each is started by a test fixture and stopped by it; none leaves a thread running.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agentops_server import TOKEN

SLOW_SECONDS = 0.4
"""How long the slow server takes over each answer."""


class BlackHole:
    """Accepts connections and never answers (a proxy or firewall dropping traffic)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="black-hole", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> BlackHole:
        self._thread.start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # the listener was closed: stop
                return
            self._held.append(connection)

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # already closed
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        self._thread.join(timeout=10)
        for connection in self._held:
            connection.close()


class _Answering:
    """An HTTP server answering every request with ``answer``."""

    def __init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, body = server.answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-server", daemon=True)

    def answer(self, path: str) -> tuple[int, bytes]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> _Answering:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class Failing(_Answering):
    """Answers everything with 500."""

    def answer(self, path: str) -> tuple[int, bytes]:
        return 500, b'{"error": "internal"}'


class Slow(_Answering):
    """Answers like AgentOps, each answer ``SLOW_SECONDS`` late."""

    def answer(self, path: str) -> tuple[int, bytes]:
        time.sleep(SLOW_SECONDS)
        if path.endswith("/v3/auth/token"):
            return 200, f'{{"token": "{TOKEN}", "project_id": "p", "project_prem_status": "pro"}}'.encode()
        return 200, b"{}"


SERVERS = {"black-hole": BlackHole, "failing": Failing, "slow": Slow}
