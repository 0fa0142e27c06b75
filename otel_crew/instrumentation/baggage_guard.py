"""Keeping CrewAI's own baggage inside the process.

CrewAI 1.x keeps a flow run's inputs (``flow_inputs``, ``flow_input_files``)
and the running crew (``crew_context``) in OpenTelemetry baggage, for its own
readers. The W3C baggage propagator (in the default ``tracecontext,baggage``
set) writes every baggage entry into the ``baggage`` header of each request an
instrumented HTTP client sends, so a flow's inputs (customer data, keys) would
reach the LLM provider and every service a step calls.

While otel-crew is instrumented, ``W3CBaggagePropagator.inject`` is wrapped at
class level to inject from the context minus CrewAI's entries. Class level
covers every instance: the default global propagator, composite propagators,
and propagators built or set globally after ``instrument()``. Entries the user
set go out unchanged, and the caller's context is not altered (the stripped one
is new). ``install()`` returns the patch; undoing it puts back the exact method
that stood before. Not covered: other baggage formats (Jaeger's ``uberctx-``,
OT's ``ot-baggage-``) and subclasses that override ``inject`` without calling it.
"""

from __future__ import annotations

from opentelemetry import baggage
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context, get_current

from otel_crew.instrumentation.patches import Patch, inject_patch

__all__ = ["CREWAI_BAGGAGE_KEYS", "install"]

# Every key CrewAI passes to baggage.set_baggage (1.15: flow runtime and crew
# kickoff; 0.x sets none). tests/instrumentation/test_baggage_guard.py reads
# the installed CrewAI's source to keep this list complete.
CREWAI_BAGGAGE_KEYS = frozenset({"flow_inputs", "flow_input_files", "crew_context"})


def _without_crewai_entries(context: Context | None) -> Context | None:
    present = CREWAI_BAGGAGE_KEYS.intersection(baggage.get_all(context))
    if not present:
        return context
    stripped = context if context is not None else get_current()
    for key in present:
        stripped = baggage.remove_baggage(key, stripped)
    return stripped


def install() -> Patch:
    """Wrap ``W3CBaggagePropagator.inject``; the returned patch undoes it."""
    return inject_patch(W3CBaggagePropagator, _without_crewai_entries)
