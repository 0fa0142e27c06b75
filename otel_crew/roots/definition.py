"""The one definition of a *root*, shared by both span processors.

A root is what an AgentOps session belongs to and what the unclosed-root
processor watches: the outermost ``workflow()`` span (it carries
``otel_crew.root=true``), else the first span of its trace in this process (no
parent, or a remote parent such as an incoming web request).

A root under a remote parent whose tracestate carries otel-crew's marker
(``remote.py``) is the *local part of a remote root*: the caller's root owns
the session and decides the outcome; the local part is watched and journaled
here like any root, but opens no session.

``RootIndex`` maps every open span to the nearest root above it, so that a
kickoff or any other span finds its root in constant time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import TypeVar

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Span, SpanContext, SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

from otel_crew.roots.remote import carries_marker
from otel_crew.semconv import ROOT_ATTRIBUTE

# Set only while workflow() starts its outermost span: processors learn that
# the span starting is a root without reading its attributes, a failed look-up
# that would cost every other span about half a microsecond.
_starting_root: ContextVar[bool] = ContextVar("otel_crew_starting_root", default=False)


def starts_root(parent: SpanContext | None) -> bool:
    """Whether a span with this parent is a root, inside ``SpanProcessor.on_start``:
    the hot path, so the caller reads ``span.parent`` once for both this and
    ``RootIndex.add_child``. (An SDK span never has an invalid parent: the SDK
    starts a span whose parent context is invalid with none.)"""
    return parent is None or parent.is_remote or _starting_root.get()


def is_remote_part(parent: SpanContext | None) -> bool:
    """Whether a root with this parent is the local part of a root in another
    process (a remote parent that carries otel-crew's marker): it owns no session."""
    return parent is not None and parent.is_remote and carries_marker(parent)


def is_root(span: ReadableSpan) -> bool:
    """Whether a finished (or any) ``span`` is a root, read from the span itself."""
    if starts_root(span.parent):
        return True
    attributes = span.attributes
    return attributes is not None and attributes.get(ROOT_ATTRIBUTE) is True


def start_root_span(tracer: Tracer, name: str, context: Context, attributes: Mapping[str, AttributeValue]) -> Span:
    """Start a span that is a root wherever it sits (the outermost ``workflow()``)."""
    token = _starting_root.set(True)
    try:
        return tracer.start_span(name, context=context, kind=SpanKind.INTERNAL, attributes=attributes)
    finally:
        _starting_root.reset(token)


def span_key(span: ReadableSpan) -> int:
    """A key that names one open span: its span id (64 random bits; two open
    spans sharing one is as likely as guessing a 64-bit key). The processors'
    ``on_end`` reads ``span.context.span_id`` itself: a call saved per span."""
    span_id: int = span.context.span_id
    return span_id


RecordT = TypeVar("RecordT")


class RootIndex(dict[int, RecordT]):
    """Open spans, by ``span_key``, mapped to the record of their root, for
    O(1) look-ups: a dict, so that the hot path calls no method of ours but
    ``add_child`` (``index[key] = record`` maps a root to its own record,
    ``index.pop(key, None)`` forgets a span).

    A span whose parent is unknown here (it ended already, or lives in another
    process) is mapped to nothing. Dict operations are atomic under the GIL, so
    the index needs no lock of its own.
    """

    def add_child(self, span: ReadableSpan, parent: SpanContext) -> RecordT | None:
        """Map ``span`` to the record of the root of its (local) ``parent``, ``span.parent``; return that record."""
        record = self.get(parent.span_id)
        if record is not None:
            self[span.context.span_id] = record
        return record

    def count_children(self, records: Iterable[RecordT]) -> dict[int, int]:
        """id(record) -> how many open spans other than the root itself map to it,
        for ``records``: one pass over the index, for the rare moments that need it."""
        wanted = {id(record) for record in records}
        counts = dict.fromkeys(wanted, -1)  # the root maps to its own record
        for record in list(self.values()):
            if id(record) in wanted:
                counts[id(record)] += 1
        return counts
