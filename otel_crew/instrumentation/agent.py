"""Agents: ``invoke_agent {role}`` around an agent working on a task
(``Agent.execute_task`` and ``aexecute_task``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import Span

from otel_crew.instrumentation import attributes as attrs
from otel_crew.instrumentation.calls import StepMarker, Wrapped, active_step, call_arg
from otel_crew.roots.scope import SpanScope
from otel_crew.semconv import CREWAI_TASK_OUTPUT, GEN_AI_AGENT_NAME


@dataclass
class AgentWrappers:
    """The agent wrappers, bound to one tracer and one content policy."""

    tracer: trace.Tracer
    capture_content: bool

    def _agent_span(self, agent: Any, task: Any) -> Any:
        attributes = attrs.safe_attributes(attrs.agent_attributes, agent, task)
        return SpanScope(self.tracer, f"invoke_agent {attributes.get(GEN_AI_AGENT_NAME, 'agent')}", attributes)

    def _after_agent(self, span: Span, result: Any) -> None:
        if self.capture_content and span.is_recording():
            output = attrs.content_text(result)
            if output is not None:
                span.set_attribute(CREWAI_TASK_OUTPUT, output)

    @staticmethod
    def _observes_agent(agent: Any, task: Any) -> bool:
        # CrewAI 0.x retries a failed task by calling execute_task again from
        # inside itself: one span covers all attempts.
        return is_instrumentation_enabled() and active_step.get() != (id(agent), id(task))

    def execute_task(self, wrapped: Wrapped, agent: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        task = call_arg(args, kwargs, 0, "task")
        if not self._observes_agent(agent, task):
            return wrapped(*args, **kwargs)
        with self._agent_span(agent, task) as span, StepMarker((id(agent), id(task))):
            result = wrapped(*args, **kwargs)
            self._after_agent(span, result)
            return result

    def aexecute_task(self, wrapped: Wrapped, agent: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        task = call_arg(args, kwargs, 0, "task")
        if not self._observes_agent(agent, task):
            return wrapped(*args, **kwargs)

        async def observed() -> Any:
            with self._agent_span(agent, task) as span, StepMarker((id(agent), id(task))):
                result = await wrapped(*args, **kwargs)
                self._after_agent(span, result)
                return result

        return observed()
