"""Running a piece of work inside a span: the one scope both roots and wrappers use.

The work's result and exception pass through untouched. Status follows the
OpenTelemetry conventions: on success it stays UNSET (instrumentations do not
set OK; only ``workflow()``, which the user asked for, does); on failure the
exception is recorded, ``error.type`` names its qualified type and the status
becomes ERROR, unless the body set a status itself.

A span that is a root also carries its outcome (``otel_crew.root.outcome``:
``returned`` or ``raised``), because a root left UNSET on success must still
end its AgentOps session "Success", while a plain OTel root ended UNSET is
"Indeterminate".

Parenting skips spans of *other* tracer providers. AgentOps attaches its
session span and its own CrewAI spans to the current context, from its own
provider; a span of ours parented on one of them would dangle in the user's
backend. So the context also carries the last span otel-crew made current, and
a span of ours whose current parent is foreign hangs under that one instead
(or starts a new trace when there is none).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import TracebackType

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from otel_crew.roots.definition import start_root_span, starts_root
from otel_crew.semconv import ERROR_TYPE, OUTCOME_RAISED, OUTCOME_RETURNED, ROOT_OUTCOME_ATTRIBUTE

_OK = Status(StatusCode.OK)


def error_type(error: BaseException) -> str:
    """The exception's qualified type name, as semconv's ``error.type`` wants
    it: ``module.QualName``, or the bare name for builtins."""
    kind = type(error)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _status_is_unset(span: Span) -> bool:
    status = getattr(span, "status", None)  # API spans have no status to read
    return status is None or status.status_code is StatusCode.UNSET


def settle_status(span: Span, error: BaseException | None, ok_on_success: bool = False) -> None:
    """On failure record ``error``, set ``error.type`` and ERROR; on success
    OK only if asked. A status the body set wins."""
    if error is None:
        if ok_on_success and _status_is_unset(span):
            span.set_status(_OK)
        return
    span.record_exception(error, escaped=True)
    if _status_is_unset(span):
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    span.set_attribute(ERROR_TYPE, error_type(error))


def _record_outcome(span: Span, error: BaseException | None, is_root: bool) -> None:
    if is_root or starts_root(getattr(span, "parent", None)):
        span.set_attribute(ROOT_OUTCOME_ATTRIBUTE, OUTCOME_RETURNED if error is None else OUTCOME_RAISED)


Settle = Callable[[Span, "BaseException | None"], None]
"""How a scope sets its span's status from the way the work ended (None: it returned)."""

_OWN_SPAN = otel_context.create_key("otel_crew.own_span")


def _is_foreign(span: Span, tracer: trace.Tracer) -> bool:
    """Whether ``span`` was recorded by another SDK provider than ``tracer``'s."""
    resource = getattr(tracer, "resource", None)  # only SDK tracers know theirs
    if resource is None or not span.is_recording():
        return False
    return getattr(span, "resource", resource) is not resource


def own_parent_context(tracer: trace.Tracer, parent: Context | None) -> Context:
    base = parent if parent is not None else otel_context.get_current()
    if not _is_foreign(trace.get_current_span(base), tracer):
        return base
    own = otel_context.get_value(_OWN_SPAN, base)
    return trace.set_span_in_context(own if isinstance(own, Span) else trace.INVALID_SPAN, base)


class SpanScope:
    """``with SpanScope(tracer, name, attributes) as span:`` starts ``name`` as
    the current span (under ``parent``, else the current context) and ends it
    however the body leaves. A class rather than a generator: it runs around
    every span the wrappers make, and this is the cheaper protocol.

    ``ok_on_success`` sets OK when the body returns (``workflow()`` only);
    ``settle`` replaces that status rule for spans whose outcomes need their
    own reading (a flow that pauses raises a control-flow signal, not an
    error); ``links`` are given to the span at its start."""

    __slots__ = (
        "_attributes",
        "_extra_context",
        "_links",
        "_name",
        "_ok_on_success",
        "_parent",
        "_root",
        "_settle",
        "_span",
        "_token",
        "_tracer",
    )

    def __init__(
        self,
        tracer: trace.Tracer,
        name: str,
        attributes: Mapping[str, AttributeValue],
        parent: Context | None = None,
        extra_context: Mapping[str, object] | None = None,
        root: bool = False,
        ok_on_success: bool = False,
        settle: Settle | None = None,
        links: Sequence[Link] | None = None,
    ) -> None:
        self._tracer = tracer
        self._name = name
        self._attributes = attributes
        self._parent = parent
        self._extra_context = extra_context
        self._root = root
        self._ok_on_success = ok_on_success
        self._settle = settle
        self._links = links

    def __enter__(self) -> Span:
        base = own_parent_context(self._tracer, self._parent)
        if self._extra_context:
            for key, value in self._extra_context.items():
                base = otel_context.set_value(key, value, base)
        tracer, name, attributes = self._tracer, self._name, self._attributes
        if self._root:
            span = start_root_span(tracer, name, base, attributes)
        else:
            span = tracer.start_span(
                name, context=base, kind=SpanKind.INTERNAL, attributes=attributes, links=self._links
            )
        own = otel_context.set_value(_OWN_SPAN, span, base)
        self._token = otel_context.attach(trace.set_span_in_context(span, own))
        self._span = span
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        span = self._span
        try:
            if span.is_recording():
                if self._settle is None:
                    settle_status(span, error, self._ok_on_success)
                else:
                    self._settle(span, error)
                _record_outcome(span, error, self._root)
        finally:
            otel_context.detach(self._token)
            span.end()
