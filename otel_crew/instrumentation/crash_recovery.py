"""At ``instrument()`` (and ``otel-crew recover``): end the roots, and their AgentOps
sessions, of this host's processes that died with them open.

The glue between ``roots.recovery`` (the roots, into the provider's own
processors and exporters) and ``agentops_sessions.recovery`` (the sessions,
through AgentOps' export path). Never raises into the caller.
"""

from __future__ import annotations

import logging

from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor

from otel_crew.roots.recovery import Recovered, SessionEnder, recover_dead_roots

__all__ = ["recover_dead_roots_into"]

_LOG = logging.getLogger(__name__)


def recover_dead_roots_into(provider: trace.TracerProvider, end_sessions: bool) -> Recovered:
    """Recover into ``provider`` (an SDK provider; any other has no processors
    to export through, and nothing is done). ``end_sessions``: end the dead
    roots' AgentOps sessions too."""
    processor = getattr(provider, "_active_span_processor", None)
    if not isinstance(processor, SpanProcessor):
        _LOG.debug("otel-crew: the tracer provider has no SDK span processors; dead roots are left for another")
        return Recovered()
    ender: SessionEnder | None = None
    if end_sessions:
        from otel_crew.agentops_sessions.recovery import end_dead_session

        ender = end_dead_session
    try:
        return recover_dead_roots(processor, ender)
    except Exception:
        _LOG.warning("otel-crew: recovering dead processes' roots failed (contained)", exc_info=True)
        return Recovered()
