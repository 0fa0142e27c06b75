"""A loopback AgentOps stand-in: it answers the token request and receives OTLP.

The real ``agentops`` SDK is pointed at it with ``AGENTOPS_API_ENDPOINT`` and
``AGENTOPS_EXPORTER_ENDPOINT``; tests assert on what the SDK really sent.
"""

from __future__ import annotations

import json
import time

from otlp_receivers import HttpReceiver, ReceivedSpan

TOKEN = "loopback-jwt-token"


class AgentOpsStandIn(HttpReceiver):
    """Start with ``start()``; ``url`` is its base address."""

    def answer_other(self, path: str) -> tuple[int, bytes]:
        if path.endswith("/v3/auth/token"):
            answer = {"token": TOKEN, "project_id": "project-1", "project_prem_status": "pro"}
            return 200, json.dumps(answer).encode()
        return 200, b"{}"

    def sessions(self) -> list[ReceivedSpan]:
        """Session spans received (AgentOps exports a span when it ends)."""
        return [span for span in self.snapshot() if span.attributes.get("agentops.span.kind") == "session"]

    def wait_for_sessions(self, count: int, timeout: float = 15.0) -> list[ReceivedSpan]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.sessions()) < count:
            time.sleep(0.05)
        return self.sessions()

    def delivered(self) -> list[ReceivedSpan]:
        """Sessions received once AgentOps' own exporter was flushed: a session AgentOps has ended is here, so
        one missing will not arrive later (flush otel-crew's provider first: it ends sessions on a thread)."""
        from agentops.sdk.core import tracer

        if tracer.provider is not None:
            tracer.provider.force_flush()
        return self.sessions()
