"""Crews: ``invoke_workflow {crew name}`` around every kickoff.

``kickoff`` and ``akickoff`` make the span; the methods that only delegate
to them (``kickoff_async``, ``kickoff_for_each`` ...) name themselves for it.
A streaming kickoff only builds the stream: the span belongs to the inner
kickoff that does the work, under the caller's context.

Every wrapper here and in the sibling modules only observes: it runs the
wrapped method exactly once, with the same arguments, and returns its result
or lets its exception pass untouched.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import Span

from otel_crew.instrumentation import attributes as attrs
from otel_crew.instrumentation.calls import Wrapped, call_arg
from otel_crew.instrumentation.carry_over import ContextHandoff
from otel_crew.roots.scope import SpanScope
from otel_crew.semconv import CREWAI_KICKOFF_INPUTS, CREWAI_KICKOFF_OUTPUT, GEN_AI_WORKFLOW_NAME

# The public method the user called, so that the spans of kickoff_for_each and
# friends say how they were started.
_kickoff_method: contextvars.ContextVar[str | None] = contextvars.ContextVar("otel_crew_kickoff_method", default=None)


@dataclass
class CrewWrappers:
    """The kickoff wrappers, bound to one tracer, one content policy and the
    hand-off a streaming kickoff leaves its caller's context in."""

    tracer: trace.Tracer
    capture_content: bool
    handoff: ContextHandoff

    def _kickoff_span(self, crew: Any, own_method: str, parent: Context | None) -> Any:
        method = _kickoff_method.get() or own_method
        attributes = attrs.safe_attributes(attrs.crew_attributes, crew, method)
        name = attributes.get(GEN_AI_WORKFLOW_NAME, "crew")
        return SpanScope(self.tracer, f"invoke_workflow {name}", attributes, parent)

    def _before_kickoff(self, span: Span, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.capture_content and span.is_recording():
            inputs = attrs.content_text(call_arg(args, kwargs, 0, "inputs"))
            if inputs is not None:
                span.set_attribute(CREWAI_KICKOFF_INPUTS, inputs)

    def _after_kickoff(self, span: Span, crew: Any, result: Any) -> None:
        # Token totals come from the calls themselves (llm_usage.py), not from CrewAI's usage_metrics.
        if self.capture_content and span.is_recording():
            output = attrs.content_text(result)
            if output is not None:
                span.set_attribute(CREWAI_KICKOFF_OUTPUT, output)

    def _streams(self, crew: Any) -> bool:
        """A streaming kickoff only builds the stream; the span belongs to the
        inner kickoff that does the work, under the caller's context."""
        if getattr(crew, "stream", False) is True:
            self.handoff.leave("stream", crew)
            return True
        return False

    def kickoff(self, wrapped: Wrapped, crew: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not is_instrumentation_enabled() or self._streams(crew):
            return wrapped(*args, **kwargs)
        parent = self.handoff.take("stream", crew)
        with self._kickoff_span(crew, "kickoff", parent) as span:
            self._before_kickoff(span, args, kwargs)
            result = wrapped(*args, **kwargs)
            self._after_kickoff(span, crew, result)
            return result

    def akickoff(self, wrapped: Wrapped, crew: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not is_instrumentation_enabled() or self._streams(crew):
            return wrapped(*args, **kwargs)
        parent = self.handoff.take("stream", crew)

        async def observed() -> Any:
            with self._kickoff_span(crew, "akickoff", parent) as span:
                self._before_kickoff(span, args, kwargs)
                result = await wrapped(*args, **kwargs)
                self._after_kickoff(span, crew, result)
                return result

        return observed()

    def kickoff_entry(self, method: str, is_async: bool) -> Callable[..., Any]:
        """A wrapper for kickoff methods that only delegate (``kickoff_async``,
        ``kickoff_for_each`` ...): it names the method for the spans below."""

        def entry(wrapped: Wrapped, crew: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if not is_instrumentation_enabled() or _kickoff_method.get() is not None:
                return wrapped(*args, **kwargs)
            self._streams(crew)
            if is_async:
                return self._named_async(method, wrapped, args, kwargs)
            token = _kickoff_method.set(method)
            try:
                return wrapped(*args, **kwargs)
            finally:
                _kickoff_method.reset(token)

        return entry

    @staticmethod
    async def _named_async(method: str, wrapped: Wrapped, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        token = _kickoff_method.set(method)
        try:
            return await wrapped(*args, **kwargs)
        finally:
            _kickoff_method.reset(token)
