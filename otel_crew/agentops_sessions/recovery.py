"""Ending the AgentOps session of a root whose process died.

The dead process journaled its session span (``roots/journal.py``). Here that
span is ended, "Indeterminate" with the recovery's reason, and handed to
AgentOps' own span processors in this process, so it leaves through AgentOps'
exporter (with its token, and the export repair on OpenTelemetry 1.45+),
keeping its original trace and span ids: AgentOps sees the session it already
knew end.

AgentOps must be initialised in this process (``agentops.init()`` before
``instrument()``, as the README shows); otherwise the session is left in the
journal for a later recovery (``otel-crew recover`` initialises AgentOps itself).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from opentelemetry.trace import Status, StatusCode

from otel_crew.agentops_sessions.end_states import UNCLOSED_END_STATE
from otel_crew.agentops_sessions.export_repair import repair_agentops_export
from otel_crew.agentops_sessions.processor import END_STATE_REASON_ATTRIBUTE
from otel_crew.roots.journal import SpanSnapshot

__all__ = ["end_dead_session", "flush_agentops"]

_LOG = logging.getLogger(__name__)


def _agentops_provider() -> Any:
    """AgentOps' tracer provider when AgentOps is initialised here, else None."""
    try:
        import agentops
        from agentops.sdk.core import tracer
    except ImportError:
        return None
    if not agentops.get_client().initialized:
        return None
    return tracer.provider


def _end_attributes(state: str) -> dict[str, Any]:
    try:
        from agentops.sdk.attributes import get_session_end_attributes
    except ImportError:
        return {"agentops.session.end_state": state}
    return dict(get_session_end_attributes(state))


def end_dead_session(session: SpanSnapshot, end_ns: int, reason: str) -> bool:
    """Hand the ended session span to AgentOps' processors; False when AgentOps
    is not initialised in this process (the session waits in the journal)."""
    provider = _agentops_provider()
    processor = getattr(provider, "_active_span_processor", None)
    if processor is None:
        return False
    repair_agentops_export()
    attributes = {**_end_attributes(UNCLOSED_END_STATE), END_STATE_REASON_ATTRIBUTE: reason}
    processor.on_end(session.ended(end_ns, Status(StatusCode.UNSET), attributes))
    return True


def flush_agentops(timeout: float) -> bool:
    """Wait (up to ``timeout`` seconds) for AgentOps' token, then flush its
    exporter: for a short-lived process (``otel-crew recover``) that must not
    send before AgentOps has authenticated."""
    provider = _agentops_provider()
    if provider is None:
        return True
    import agentops

    deadline = time.monotonic() + timeout
    while agentops.get_client().get_current_jwt() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    flushed: bool = provider.force_flush(max(1, int((deadline - time.monotonic()) * 1000)))
    if not flushed:
        _LOG.warning("otel-crew: AgentOps did not take the recovered sessions within %.0fs", timeout)
    return flushed
