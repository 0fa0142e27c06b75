"""Celery's instrumentor on otel-crew's tracer provider, so that a trace never splits at a task.

Celery's spans (``apply_async/{task}`` in the caller, ``run/{task}`` in the
worker) carry the trace across the broker. They must come from the same
provider as otel-crew's: with ``CeleryInstrumentor().instrument()`` on the
global provider after ``agentops.init()`` (which sets AgentOps' own as the
global one), the user's export misses every task span, the worker's crews hang
from a parent it never receives, and each worker's root looks like a new one.

At ``instrument()`` (option ``celery="auto"``, the default), when Celery and
``opentelemetry-instrumentation-celery`` are installed and Celery's
instrumentor is not on yet, otel-crew puts it on with the provider given to
``instrument(tracer_provider=...)``, and takes it off again at ``uninstrument()``
(with no provider given, both record into the global one: nothing to wire). When the user put it on already, it
is left alone; if its spans go to another provider, one warning says so and
how to fix it (``otel-crew doctor`` says the same in general terms).
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

from opentelemetry import trace

__all__ = ["CeleryWiring", "celery_instrumentable"]

_LOG = logging.getLogger(__name__)

SPLIT_WARNING = (
    "otel-crew: Celery's instrumentor is on, but its spans go to another tracer provider than otel-crew's "
    "(CeleryInstrumentor().instrument() was called without tracer_provider=..., after agentops.init() made "
    "AgentOps' provider the global one?): each task splits the trace and every worker's crew is a root of its "
    "own. Fix: call CeleryInstrumentor().instrument(tracer_provider=provider) with otel-crew's provider, or "
    "leave it to OtelCrewInstrumentor().instrument(tracer_provider=provider), which wires it."
)


def celery_instrumentable() -> bool:
    """Whether Celery and its OpenTelemetry instrumentation are both installed."""
    return all(
        importlib.util.find_spec(name) is not None for name in ("celery", "opentelemetry.instrumentation.celery")
    )


def _same_provider(tracer: Any, provider: trace.TracerProvider) -> bool:
    """Whether ``tracer`` (Celery's) records into ``provider``: an SDK tracer shares its provider's span
    processor; a proxy tracer follows the global provider."""
    if isinstance(tracer, trace.ProxyTracer) or tracer is None:
        return trace.get_tracer_provider() is provider
    processors = getattr(provider, "_active_span_processor", None)
    return processors is not None and getattr(tracer, "span_processor", None) is processors


class CeleryWiring:
    """What ``instrument()`` did to Celery's instrumentor, to undo exactly that."""

    def __init__(self) -> None:
        self._ours: Any = None  # the CeleryInstrumentor we put on

    def wire(self, tracer_provider: trace.TracerProvider | None, provider: trace.TracerProvider) -> None:
        """Put Celery's instrumentor on ``tracer_provider`` (what otel-crew's tracer uses; None: the
        global one), or warn if the user's is on another than ``provider`` (the resolved one)."""
        if not celery_instrumentable():
            return
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        instrumentor = CeleryInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            if not _same_provider(getattr(instrumentor, "_tracer", None), provider):
                _LOG.warning(SPLIT_WARNING)
            return
        if tracer_provider is None:
            # otel-crew records into the global provider, where a bare CeleryInstrumentor().instrument() puts
            # Celery's spans too: nothing can split, and opentelemetry-instrument may be about to put it on.
            return
        instrumentor.instrument(tracer_provider=tracer_provider)
        self._ours = instrumentor
        _LOG.debug("otel-crew: Celery's instrumentor is on, with otel-crew's tracer provider")

    def unwire(self) -> None:
        if self._ours is not None:
            self._ours.uninstrument()
            self._ours = None
