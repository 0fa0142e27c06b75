"""Running a piece of work inside a span: the one scope both roots and wrappers use.

The work's result and exception pass through untouched. On success the span's
status becomes OK unless something already set one; on failure the exception
is recorded and the status becomes ERROR, again unless set already.

Parenting skips spans of *other* tracer providers. AgentOps attaches its
session span and its own CrewAI spans to the current context, from its own
provider; a span of ours parented on one of them would dangle in the user's
backend. So the context also carries the last span otel-crew made current, and
a span of ours whose current parent is foreign hangs under that one instead
(or starts a new trace when there is none).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue


def _status_is_unset(span: Span) -> bool:
    status = getattr(span, "status", None)  # API spans have no status to read
    return status is None or status.status_code is StatusCode.UNSET


def mark_failed(span: Span, error: BaseException) -> None:
    """Record ``error`` on ``span`` and set ERROR, unless a status is set already."""
    if not span.is_recording():
        return
    span.record_exception(error, escaped=True)
    if _status_is_unset(span):
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


def mark_succeeded(span: Span) -> None:
    if span.is_recording() and _status_is_unset(span):
        span.set_status(Status(StatusCode.OK))


_OWN_SPAN = otel_context.create_key("otel_crew.own_span")


def _is_foreign(span: Span, tracer: trace.Tracer) -> bool:
    """Whether ``span`` was recorded by another SDK provider than ``tracer``'s."""
    resource = getattr(tracer, "resource", None)  # only SDK tracers know theirs
    if resource is None or not span.is_recording():
        return False
    return getattr(span, "resource", resource) is not resource


def _parent_context(tracer: trace.Tracer, parent: Context | None) -> Context:
    base = parent if parent is not None else otel_context.get_current()
    if not _is_foreign(trace.get_current_span(base), tracer):
        return base
    own = otel_context.get_value(_OWN_SPAN, base)
    return trace.set_span_in_context(own if isinstance(own, Span) else trace.INVALID_SPAN, base)


@contextmanager
def span_scope(
    tracer: trace.Tracer,
    name: str,
    attributes: Mapping[str, AttributeValue],
    parent: Context | None = None,
    extra_context: Mapping[str, object] | None = None,
) -> Iterator[Span]:
    """Start ``name`` as the current span (under ``parent``, else the current
    context), yield it, and end it however the body leaves."""
    base = _parent_context(tracer, parent)
    for key, value in (extra_context or {}).items():
        base = otel_context.set_value(key, value, base)
    span = tracer.start_span(name, context=base, kind=SpanKind.INTERNAL, attributes=attributes)
    token = otel_context.attach(trace.set_span_in_context(span, otel_context.set_value(_OWN_SPAN, span, base)))
    try:
        yield span
    except BaseException as error:
        mark_failed(span, error)
        raise
    else:
        mark_succeeded(span)
    finally:
        otel_context.detach(token)
        span.end()
