"""Running the ``otel-crew`` command as a user does (a subprocess), and the
listeners the CLI tests point it at: nothing, a black hole, a non-OTLP server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from otlp_receivers import GrpcReceiver, HttpReceiver

PROTOCOLS = {"grpc": GrpcReceiver, "http/protobuf": HttpReceiver}


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def otel_crew(*arguments: str, env: dict[str, str] | None = None, timeout: float = 300) -> Run:
    command = [sys.executable, "-m", "otel_crew.cli", *arguments]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    return Run(result.returncode, result.stdout, result.stderr, time.monotonic() - started)


def clean_env(**variables: str) -> dict[str, str]:
    """The test process's environment without any OTLP or AgentOps key, plus ``variables``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_EXPORTER_OTLP")}
    # OTEL_SDK_DISABLED (conftest, CrewAI 0.102) would silence the demo's own provider;
    # the demo quiets CrewAI's telemetry itself.
    env.pop("OTEL_SDK_DISABLED", None)
    env.pop("AGENTOPS_API_KEY", None)
    env.update(variables)
    return env


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def black_hole() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@contextmanager
def plain_web_server(status: int = 404) -> Iterator[str]:
    """An HTTP server that is not an OTLP receiver: ``status`` (404) for every path."""

    class NotFound(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def grpc_server_without_otlp() -> Iterator[str]:
    """A gRPC server with no services: every call is UNIMPLEMENTED."""
    from concurrent import futures

    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop(grace=None).wait()


@contextmanager
def otlp_receiver(protocol: str) -> Iterator[GrpcReceiver | HttpReceiver]:
    """A loopback OTLP receiver for ``protocol``, stopped after the block."""
    server: GrpcReceiver | HttpReceiver = PROTOCOLS[protocol]().start()
    try:
        yield server
    finally:
        server.stop()
