"""Flows: ``invoke_workflow {flow name}`` around a flow run, ``{flow name}.{method}`` around each step.

A run: ``Flow.kickoff``, ``kickoff_async``, ``akickoff`` and (CrewAI 1.15)
``resume_async``. CrewAI chains them (``kickoff`` runs ``kickoff_async`` in
``asyncio.run``, ``akickoff`` awaits it, ``resume`` runs ``resume_async``); the
outermost call for a flow instance makes the one span of the run, the calls
below it see that run in a context variable and only pass through. When
``kickoff()`` is called inside a running loop, CrewAI 1.x runs ``asyncio.run``
on a worker thread with a copy of the caller's context, so the run span made at
the call is the parent there too.

A step: ``Flow._execute_method``, which CrewAI runs exactly once per executed
step (start, listen or router; sync steps in threads with the context copied,
on 1.x) and which returns before the step's listeners are scheduled: steps are
siblings below their run, and the crews, agents and tools a step runs are below
the step. CrewAI 1.x also runs its own flows (agent executors, memory) through
these methods; they are marked ``is_crewai_internal`` and make no spans.

Outcomes: a run or step that returns stays UNSET; one that raises is ERROR
with the exception recorded and ``error.type``, and the exception reaches the
caller untouched. A flow that stops for human feedback (1.15:
``HumanFeedbackPending``, which the step raises and ``kickoff`` returns) is
not a failure: its step and run spans end UNSET with ``otel_crew.flow.paused``.

Pause and resume, the choice made: when a step pauses, the paused run's span
context (trace and span id, hex) is written into the pending-feedback context
CrewAI is about to persist, under ``PendingFeedbackContext.metadata
["otel_crew.paused_run"]``. ``Flow.from_pending()`` (same process or another)
brings it back with the flow; the ``resume_async`` wrapper takes it out again
before CrewAI reads the metadata (so the user's ``HumanFeedbackResult.metadata``
is what the decorator gave) and starts the resumed run as a new root linked to
the paused run's span. Both runs carry the flow state's id as
``gen_ai.conversation.id``.
"""

from __future__ import annotations

import contextvars
import logging
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import Link, Span, SpanContext, TraceFlags

from otel_crew.instrumentation import attributes as attrs
from otel_crew.instrumentation.calls import Wrapped, call_arg
from otel_crew.roots.scope import SpanScope, settle_status
from otel_crew.semconv import (
    CREWAI_FLOW_INPUTS,
    CREWAI_FLOW_OUTPUT,
    CREWAI_FLOW_ROUTER_ROUTE,
    CREWAI_FLOW_STEP,
    CREWAI_FLOW_STEP_KIND,
    FLOW_PAUSED_ATTRIBUTE,
    GEN_AI_CONVERSATION_ID,
    GEN_AI_WORKFLOW_NAME,
)

__all__ = ["PAUSED_RUN_KEY", "FlowWrappers", "current_conversation_id", "flow_class_module"]

_LOG = logging.getLogger(__name__)

PAUSED_RUN_KEY = "otel_crew.paused_run"
"""The key of the paused run's span context in CrewAI's persisted pending-feedback metadata."""


@dataclass(frozen=True, slots=True)
class _Run:
    flow_key: int  # id() of the flow instance: alive for as long as its run
    span_context: SpanContext
    conversation_id: str | None


_current_run: contextvars.ContextVar[_Run | None] = contextvars.ContextVar("otel_crew_flow_run", default=None)


def current_conversation_id() -> str | None:
    """The state id of the flow run around the caller, if any (agents inside a flow carry it)."""
    run = _current_run.get()
    return None if run is None else run.conversation_id


def flow_class_module() -> str:
    """Where the installed CrewAI defines ``Flow``'s methods: ``crewai.flow.runtime`` on 1.x
    (``crewai.flow.flow.Flow`` only inherits them there), ``crewai.flow.flow`` before."""
    import importlib.util

    return "crewai.flow.runtime" if importlib.util.find_spec("crewai.flow.runtime") is not None else "crewai.flow.flow"


def _pause_signals() -> tuple[type[BaseException], ...]:
    try:
        from crewai.flow.async_feedback import HumanFeedbackPending
    except ImportError:  # CrewAI before human feedback: nothing pauses
        return ()
    return (HumanFeedbackPending,)


class _RunMarker:
    """``with _RunMarker(flow, span):`` tells the calls below (CrewAI's chained
    entry points, the steps, agents) which run they belong to."""

    __slots__ = ("_run", "_token")

    def __init__(self, flow: Any, span: Span) -> None:
        conversation = attrs.flow_id(flow) if span.is_recording() else None
        self._run = _Run(id(flow), span.get_span_context(), conversation)

    def __enter__(self) -> None:
        self._token = _current_run.set(self._run)

    def __exit__(self, *exc_info: object) -> None:
        _current_run.reset(self._token)


def _paused_run_link(flow: Any) -> list[Link]:
    """Take the paused run's span context out of a restored flow's pending feedback."""
    try:
        pending: Any = getattr(flow, "pending_feedback", None)
        metadata = getattr(pending, "metadata", None)
        if not isinstance(metadata, dict) or PAUSED_RUN_KEY not in metadata:
            return []
        saved = metadata[PAUSED_RUN_KEY]
        pending.metadata = {key: value for key, value in metadata.items() if key != PAUSED_RUN_KEY}
        paused = SpanContext(
            trace_id=int(saved["trace_id"], 16),
            span_id=int(saved["span_id"], 16),
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        return [Link(paused)] if paused.is_valid else []
    except Exception:  # a link is a nicety: never break a resume
        _LOG.debug("otel-crew: could not read the paused run of %r", type(flow).__name__, exc_info=True)
        return []


@dataclass
class FlowWrappers:
    """The run and step wrappers, bound to one tracer and one content policy."""

    tracer: trace.Tracer
    capture_content: bool
    _pauses: tuple[type[BaseException], ...] = field(default_factory=_pause_signals)

    # -- outcomes -----------------------------------------------------------------

    def _is_pause(self, value: object) -> bool:
        return bool(self._pauses) and isinstance(value, self._pauses)

    def _settle(self, span: Span, error: BaseException | None) -> None:
        """A pause is no error: the span stays UNSET, marked paused; otherwise the usual rule."""
        if error is not None and self._is_pause(error):
            span.set_attribute(FLOW_PAUSED_ATTRIBUTE, True)
            return
        settle_status(span, error)

    # -- runs -----------------------------------------------------------------------

    def _passes_through(self, flow: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        if not is_instrumentation_enabled() or getattr(type(flow), "is_crewai_internal", False) is True:
            return True
        run = _current_run.get()
        if run is not None and run.flow_key == id(flow):
            return True  # an entry point CrewAI chains to: the run has its span
        # A streaming run happens when the stream is read, through an inner
        # kickoff; a checkpoint restore runs another instance: those are spanned.
        if getattr(flow, "stream", False) is True:
            return True
        return getattr(call_arg(args, kwargs, 2, "from_checkpoint"), "restore_from", None) is not None

    def _run_scope(self, flow: Any, given: Any, links: list[Link] | None = None) -> SpanScope:
        attributes = attrs.safe_attributes(attrs.flow_run_attributes, flow)
        if self.capture_content and given is not None:
            text = attrs.content_text(given)
            if text is not None:
                attributes[CREWAI_FLOW_INPUTS] = text
        name = f"invoke_workflow {attributes.get(GEN_AI_WORKFLOW_NAME, 'flow')}"
        return SpanScope(self.tracer, name, attributes, settle=self._settle, links=links)

    def _after_run(self, span: Span, flow: Any, result: Any) -> None:
        if not span.is_recording():
            return
        conversation = attrs.safe_attributes(attrs.flow_run_attributes, flow).get(GEN_AI_CONVERSATION_ID)
        if conversation is not None:  # inputs["id"] or a restore may have changed it during the run
            span.set_attribute(GEN_AI_CONVERSATION_ID, conversation)
        if self._is_pause(result):
            span.set_attribute(FLOW_PAUSED_ATTRIBUTE, True)
        elif self.capture_content:
            output = attrs.content_text(result)
            if output is not None:
                span.set_attribute(CREWAI_FLOW_OUTPUT, output)

    def kickoff(self, wrapped: Wrapped, flow: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._passes_through(flow, args, kwargs):
            return wrapped(*args, **kwargs)
        with self._run_scope(flow, call_arg(args, kwargs, 0, "inputs")) as span, _RunMarker(flow, span):
            result = wrapped(*args, **kwargs)
            self._after_run(span, flow, result)
            return result

    def kickoff_async(self, wrapped: Wrapped, flow: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``kickoff_async`` and ``akickoff``: the run is spanned when awaited."""
        if self._passes_through(flow, args, kwargs):
            return wrapped(*args, **kwargs)
        return self._observed_run(flow, wrapped, args, kwargs, call_arg(args, kwargs, 0, "inputs"), None)

    def resume_async(self, wrapped: Wrapped, flow: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A resumed run (1.15): a new root, linked to the run that paused."""
        if self._passes_through(flow, args, kwargs):
            return wrapped(*args, **kwargs)
        links = _paused_run_link(flow)
        return self._observed_run(flow, wrapped, args, kwargs, call_arg(args, kwargs, 0, "feedback"), links)

    async def _observed_run(
        self,
        flow: Any,
        wrapped: Wrapped,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        given: Any,
        links: list[Link] | None,
    ) -> Any:
        with self._run_scope(flow, given, links) as span, _RunMarker(flow, span):
            result = await wrapped(*args, **kwargs)
            self._after_run(span, flow, result)
            return result

    # -- steps ----------------------------------------------------------------------

    def execute_method(self, wrapped: Wrapped, flow: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not is_instrumentation_enabled() or getattr(type(flow), "is_crewai_internal", False) is True:
            return wrapped(*args, **kwargs)
        return self._observed_step(flow, wrapped, args, kwargs)

    async def _observed_step(self, flow: Any, wrapped: Wrapped, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        attributes = attrs.safe_attributes(attrs.flow_step_attributes, flow, call_arg(args, kwargs, 0, "method_name"))
        name = f"{attrs.flow_name(flow)}.{attributes.get(CREWAI_FLOW_STEP, 'step')}"
        with SpanScope(self.tracer, name, attributes, settle=self._settle) as span:
            try:
                result = await wrapped(*args, **kwargs)
            except self._pauses as pending:
                self._remember_paused_run(pending)
                raise
            self._after_step(span, attributes.get(CREWAI_FLOW_STEP_KIND), result)
            return result

    def _after_step(self, span: Span, kind: Any, result: Any) -> None:
        if not span.is_recording():
            return
        # CrewAI 1.x returns (result, finished event id); 0.x the result itself.
        value = result[0] if isinstance(result, tuple) and len(result) == 2 else result
        if kind == "router":
            route = attrs.router_route(value)
            if route is not None:
                span.set_attribute(CREWAI_FLOW_ROUTER_ROUTE, route)
        if self.capture_content:
            output = attrs.content_text(value)
            if output is not None:
                span.set_attribute(CREWAI_FLOW_OUTPUT, output)

    @staticmethod
    def _remember_paused_run(pending: BaseException) -> None:
        """Write the paused run's span context where CrewAI persists the pause."""
        run = _current_run.get()
        context = getattr(pending, "context", None)
        if run is None or context is None:
            return
        try:
            saved = {"trace_id": f"{run.span_context.trace_id:032x}", "span_id": f"{run.span_context.span_id:016x}"}
            # A new dict: a non-empty metadata dict is the decorator's own object.
            context.metadata = {**(getattr(context, "metadata", None) or {}), PAUSED_RUN_KEY: saved}
        except Exception:
            _LOG.debug("otel-crew: could not remember the paused run", exc_info=True)
