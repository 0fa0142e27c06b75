"""Agents: ``invoke_agent {role}`` around an agent working on a task
(``Agent.execute_task`` and ``aexecute_task``) and around an agent run on its
own (``Agent.kickoff`` and ``kickoff_async``, CrewAI 0.130+). Inside a flow run
the span carries the flow state's id as ``gen_ai.conversation.id``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import Span

from otel_crew.instrumentation import attributes as attrs
from otel_crew.instrumentation.calls import StepMarker, Wrapped, active_step, call_arg
from otel_crew.instrumentation.flow import current_conversation_id
from otel_crew.roots.scope import SpanScope
from otel_crew.semconv import CREWAI_TASK_OUTPUT, GEN_AI_AGENT_NAME, GEN_AI_CONVERSATION_ID


def _never() -> bool:
    return False


def _kickoff_delegation_check() -> Callable[[], bool]:
    """CrewAI 1.x's ``Agent.kickoff`` inside a running loop only returns
    ``kickoff_async(...)``, whose wrapper makes the span when it is awaited:
    CrewAI's own test for that case, or one that is never true (0.x runs it)."""
    try:
        from crewai.utilities.agent_utils import is_inside_event_loop
    except ImportError:
        return _never
    return is_inside_event_loop


@dataclass
class AgentWrappers:
    """The agent wrappers, bound to one tracer and one content policy."""

    tracer: trace.Tracer
    capture_content: bool
    _kickoff_delegates: Callable[[], bool] = field(default_factory=_kickoff_delegation_check)

    def _agent_span(self, agent: Any, task: Any) -> Any:
        attributes = attrs.safe_attributes(attrs.agent_attributes, agent, task)
        conversation = current_conversation_id()
        if conversation is not None:
            attributes[GEN_AI_CONVERSATION_ID] = conversation
        return SpanScope(self.tracer, f"invoke_agent {attributes.get(GEN_AI_AGENT_NAME, 'agent')}", attributes)

    def _kickoff_span(self, agent: Any) -> Any:
        attributes = attrs.safe_attributes(attrs.agent_kickoff_attributes, agent, current_conversation_id())
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

    # -- an agent on its own ------------------------------------------------------

    @staticmethod
    def _observes_kickoff(agent: Any) -> bool:
        # 0.130's kickoff_async runs kickoff in a thread (with the context): one span.
        return is_instrumentation_enabled() and active_step.get() != (id(agent),)

    def kickoff(self, wrapped: Wrapped, agent: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not self._observes_kickoff(agent) or self._kickoff_delegates():
            return wrapped(*args, **kwargs)
        with self._kickoff_span(agent) as span, StepMarker((id(agent),)):
            result = wrapped(*args, **kwargs)
            self._after_agent(span, result)
            return result

    def kickoff_async(self, wrapped: Wrapped, agent: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not self._observes_kickoff(agent):
            return wrapped(*args, **kwargs)

        async def observed() -> Any:
            with self._kickoff_span(agent) as span, StepMarker((id(agent),)):
                result = await wrapped(*args, **kwargs)
                self._after_agent(span, result)
                return result

        return observed()
