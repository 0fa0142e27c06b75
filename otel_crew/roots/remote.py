"""Roots that reach across processes: the marker on the wire, and the moment work leaves.

A root in one process (the *caller*) may hand work to others (Celery workers,
a process pool): the trace context goes with it, and the first span of that
trace in the other process has a remote parent, so by the definition it is a
root there too. The caller's root must stay the one that owns the session and
decides the outcome; the other side's root is only the *local part* of it.

What tells the two apart is a marker in the W3C ``tracestate`` of the context
that crosses the wire, the entry ``otelcrew``. It says "the root of this trace
is watched by otel-crew in the process that sent it"; its value is ``1``, or,
once the caller's root has a session, that session span's id (16 hex digits,
an id like the ones ``traceparent`` carries: no user data, no key), so that
a worker's spans can hang from the session in the session's own view. It is
added to the outgoing context only (the caller's own spans keep their
tracestate), by the propagator hook in ``instrumentation/handoff.py``, and
only when a processor of ours here knows the root of the span being sent. A
worker's spans inherit it from their remote parent, so work a worker hands on
carries it too. A remote parent without it (a web request from a service
without otel-crew) starts a root as before.

Not every context that leaves is work handed off: an HTTP call made inside a
root (a CLIENT span) is a service the root uses, which keeps its own root and
session as before. A *hand-off* is a context sent from a PRODUCER span (a task
queue's publish: Celery's ``apply_async/{task}``) or from the root span itself
(a context injected by hand, directly under the root, for a process pool).
Only a hand-off carries the marker.

At a hand-off, listeners (the processors, as weak
methods) learn which span's context left the process, so the caller's session
opens even when no kickoff runs in its own process (and names its span for
the marker), and the unclosed-root processor knows to look for remote
activity before it flags the root.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from weakref import WeakMethod

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, TraceState

__all__ = [
    "MARKER_KEY",
    "MARKER_VALUE",
    "carries_marker",
    "handing_off",
    "is_handoff",
    "marked",
    "on_handoff",
    "remote_anchor",
]

_LOG = logging.getLogger(__name__)

MARKER_KEY = "otelcrew"
"""The ``tracestate`` key (W3C: lowercase, no vendor prefix needed for a simple key)."""
MARKER_VALUE = "1"
"""The marker's value when no listener names an anchor span."""
_ANCHOR_DIGITS = 16

_listeners: list[WeakMethod[Callable[[SpanContext], str | None]]] = []
_lock = threading.Lock()


def carries_marker(context: SpanContext) -> bool:
    """Whether ``context``'s tracestate says its root is an otel-crew root elsewhere (or here, already sent)."""
    return context.trace_state.get(MARKER_KEY) is not None


def marked(context: SpanContext, value: str) -> SpanContext:
    """``context`` with the marker ``value`` in its tracestate (the same context when it has a marker)."""
    if carries_marker(context):
        return context
    state: TraceState = context.trace_state.add(MARKER_KEY, value)
    return SpanContext(context.trace_id, context.span_id, context.is_remote, context.trace_flags, state)


def anchor_value(span_id: int) -> str:
    """The marker's value naming ``span_id`` as the span a remote part's spans hang from."""
    return f"{span_id:0{_ANCHOR_DIGITS}x}"


def remote_anchor(parent: SpanContext | None) -> SpanContext | None:
    """The span the marker of a remote ``parent`` names (in the parent's trace), None if it names none."""
    value = None if parent is None or not parent.is_remote else parent.trace_state.get(MARKER_KEY)
    if value is None or len(value) != _ANCHOR_DIGITS:
        return None
    try:
        span_id = int(value, 16)
    except ValueError:
        return None
    return None if span_id == 0 else SpanContext(parent.trace_id, span_id, True, parent.trace_flags)  # type: ignore[union-attr]


def is_handoff(span: ReadableSpan, span_is_root: bool) -> bool:
    """Whether sending ``span``'s context hands work to another process (see above)."""
    return span_is_root or span.kind is SpanKind.PRODUCER


def on_handoff(method: Callable[[SpanContext], str | None]) -> None:
    """Call ``method`` (a bound method; held weakly) with each span context that is
    sent to another process; it returns None if it does not know that span's root,
    else the marker's value (``MARKER_VALUE``, or ``anchor_value(...)`` of a span)."""
    with _lock:
        _listeners[:] = [alive for alive in _listeners if alive() is not None]
        _listeners.append(WeakMethod(method))


def handing_off(context: SpanContext) -> str | None:
    """Tell the listeners that ``context`` is leaving the process; the marker's value to send
    (an anchor a listener named, else ``MARKER_VALUE``), or None when no listener knows its root.
    A listener that raises counts as not knowing."""
    value = None
    for reference in list(_listeners):
        listener = reference()
        if listener is None:
            continue
        try:
            said = listener(context)
        except Exception:  # a listener's trouble never reaches the sender
            _LOG.debug("otel-crew: a hand-off listener raised (contained)", exc_info=True)
            continue
        if said is not None and (value is None or value == MARKER_VALUE):
            value = said
    return value
