"""The marker on contexts that hand work to another process (see ``roots/remote.py``).

While otel-crew is instrumented, ``TraceContextTextMapPropagator.inject`` is
wrapped at class level (as ``baggage_guard.py`` wraps the baggage
propagator's), so every way a context leaves the process goes through it: the
global propagator, composite ones, Celery's instrumentor (``apply_async``
publishes from a PRODUCER span) and a context injected by hand with
``opentelemetry.propagate.inject``. When the span being sent hands work off (a
PRODUCER span, or a root itself) and a processor of ours knows its root, the
``traceparent`` goes out unchanged and the ``tracestate`` with otel-crew's
marker added (its value: the root's session span id once it has one, else
1); the caller's context and spans are not altered. Anything else
(an HTTP call inside a root, a span no processor of ours watches) is injected
exactly as before. ``install()`` returns the patch; undoing it puts back the
exact method that stood before.
"""

from __future__ import annotations

import logging

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_crew.instrumentation.patches import Patch, inject_patch
from otel_crew.roots.definition import is_root
from otel_crew.roots.remote import carries_marker, handing_off, is_handoff, marked

__all__ = ["install"]

_LOG = logging.getLogger(__name__)


def _marked_context(context: Context | None) -> Context | None:
    """The context to send: ``context`` (None: the current one) with its span's context marked, when
    that span hands work off to a root of ours; else ``context`` itself (sent as given)."""
    try:
        span = trace.get_current_span(context)
        span_context = span.get_span_context()
        if not span_context.is_valid or carries_marker(span_context) or not isinstance(span, ReadableSpan):
            return context  # nothing to send, already marked (a worker's own spans), or not an SDK span
        value = handing_off(span_context) if is_handoff(span, is_root(span)) else None
    except Exception:  # the marker is never worth a failed publish
        _LOG.debug("otel-crew: no marker for this context", exc_info=True)
        return context
    if value is None:
        return context
    return trace.set_span_in_context(trace.NonRecordingSpan(marked(span_context, value)), context)


def install() -> Patch:
    """Wrap ``TraceContextTextMapPropagator.inject``; the returned patch undoes it."""
    return inject_patch(TraceContextTextMapPropagator, _marked_context)
