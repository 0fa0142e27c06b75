"""A loopback AgentOps stand-in: it answers the token request and receives OTLP.

The real ``agentops`` SDK is pointed at it with ``AGENTOPS_API_ENDPOINT`` and
``AGENTOPS_EXPORTER_ENDPOINT``; tests assert on what the SDK really sent.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

TOKEN = "loopback-jwt-token"


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    authorization: str


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def _decompressed(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


class AgentOpsStandIn:
    """Start with ``start()``; ``url`` is its base address."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.token_requests = 0
        self._lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.endswith("/v3/auth/token"):
                    with stand_in._lock:
                        stand_in.token_requests += 1
                    self._answer(200, {"token": TOKEN, "project_id": "project-1", "project_prem_status": "pro"})
                elif self.path.endswith("/v1/traces"):
                    stand_in._receive(body, self.headers.get("Content-Encoding", ""), self.headers)
                    self._answer(200, None, content_type="application/x-protobuf")
                else:
                    self._answer(200, {})

            def _answer(self, status: int, payload: Any, content_type: str = "application/json") -> None:
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> AgentOpsStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _receive(self, body: bytes, encoding: str, headers: Any) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(_decompressed(body, encoding))
        received = [
            ReceivedSpan(
                name=span.name,
                trace_id=span.trace_id.hex(),
                span_id=span.span_id.hex(),
                parent_span_id=span.parent_span_id.hex(),
                attributes={attribute.key: _value(attribute.value) for attribute in span.attributes},
                authorization=headers.get("Authorization", ""),
            )
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        with self._lock:
            self.spans.extend(received)

    def sessions(self) -> list[ReceivedSpan]:
        """Session spans received, ended ones only (AgentOps exports a span when it ends)."""
        with self._lock:
            return [span for span in self.spans if span.attributes.get("agentops.span.kind") == "session"]

    def wait_for_sessions(self, count: int, timeout: float = 15.0) -> list[ReceivedSpan]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.sessions()) < count:
            time.sleep(0.05)
        return self.sessions()
