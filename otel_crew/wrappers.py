"""Observe-only wrappers around CrewAI's methods.

Each wrapper runs the wrapped method exactly once, with the same arguments,
and returns its result or lets its exception pass untouched; a span is opened
around it. Spans follow the GenAI agent conventions: ``invoke_workflow {crew}``
for a kickoff, ``invoke_agent {role}`` for an agent working on a task,
``execute_tool {tool}`` for a tool call.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import Span

from otel_crew import attributes as attrs
from otel_crew.handoff import ContextHandoff
from otel_crew.spans import SpanScope

Wrapped = Callable[..., Any]

# The public method the user called, so that the spans of kickoff_for_each and
# friends say how they were started.
_kickoff_method: contextvars.ContextVar[str | None] = contextvars.ContextVar("otel_crew_kickoff_method", default=None)
# Identity of the innermost tool or agent step, so that CrewAI's own layering
# (invoke -> run, retries that recurse) makes one span, not two.
_active_step: contextvars.ContextVar[tuple[int, ...] | None] = contextvars.ContextVar(
    "otel_crew_active_step", default=None
)


class _Step:
    """``with _Step(key):`` marks the innermost tool or agent step (a class: it runs on every step)."""

    __slots__ = ("_key", "_token")

    def __init__(self, key: tuple[int, ...]) -> None:
        self._key = key

    def __enter__(self) -> None:
        self._token = _active_step.set(self._key)

    def __exit__(self, *exc_info: object) -> None:
        _active_step.reset(self._token)


def _call_arg(args: tuple[Any, ...], kwargs: dict[str, Any], position: int, name: str) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[position] if len(args) > position else None


@dataclass
class CrewWrappers:
    """The wrappers, bound to one tracer and one content policy."""

    tracer: trace.Tracer
    capture_content: bool
    handoff: ContextHandoff = field(default_factory=ContextHandoff)

    # -- kickoffs ---------------------------------------------------------

    def _kickoff_span(self, crew: Any, own_method: str, parent: Context | None) -> Any:
        method = _kickoff_method.get() or own_method
        attributes = attrs.safe_attributes(attrs.crew_attributes, crew, method)
        name = attributes.get(attrs.GEN_AI_WORKFLOW_NAME, "crew")
        return SpanScope(self.tracer, f"invoke_workflow {name}", attributes, parent)

    def _before_kickoff(self, span: Span, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.capture_content and span.is_recording():
            inputs = attrs.content_text(_call_arg(args, kwargs, 0, "inputs"))
            if inputs is not None:
                span.set_attribute(attrs.CREWAI_KICKOFF_INPUTS, inputs)

    def _after_kickoff(self, span: Span, crew: Any, result: Any) -> None:
        if not span.is_recording():
            return
        span.set_attributes(attrs.safe_attributes(attrs.usage_attributes, crew))
        if self.capture_content:
            output = attrs.content_text(result)
            if output is not None:
                span.set_attribute(attrs.CREWAI_KICKOFF_OUTPUT, output)

    def _streams(self, crew: Any) -> bool:
        """A streaming kickoff only builds the stream; the span belongs to the
        inner kickoff that does the work, under the caller's context."""
        if getattr(crew, "stream", False) is True:
            self.handoff.leave(("stream", id(crew)))
            return True
        return False

    def kickoff(self, wrapped: Wrapped, crew: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not is_instrumentation_enabled() or self._streams(crew):
            return wrapped(*args, **kwargs)
        parent = self.handoff.take(("stream", id(crew)))
        with self._kickoff_span(crew, "kickoff", parent) as span:
            self._before_kickoff(span, args, kwargs)
            result = wrapped(*args, **kwargs)
            self._after_kickoff(span, crew, result)
            return result

    def akickoff(self, wrapped: Wrapped, crew: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not is_instrumentation_enabled() or self._streams(crew):
            return wrapped(*args, **kwargs)
        parent = self.handoff.take(("stream", id(crew)))

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

    # -- agents -----------------------------------------------------------

    def _agent_span(self, agent: Any, task: Any) -> Any:
        attributes = attrs.safe_attributes(attrs.agent_attributes, agent, task)
        return SpanScope(self.tracer, f"invoke_agent {attributes.get(attrs.GEN_AI_AGENT_NAME, 'agent')}", attributes)

    def _after_agent(self, span: Span, result: Any) -> None:
        if self.capture_content and span.is_recording():
            output = attrs.content_text(result)
            if output is not None:
                span.set_attribute(attrs.CREWAI_TASK_OUTPUT, output)

    @staticmethod
    def _observes_agent(agent: Any, task: Any) -> bool:
        # CrewAI 0.x retries a failed task by calling execute_task again from
        # inside itself: one span covers all attempts.
        return is_instrumentation_enabled() and _active_step.get() != (id(agent), id(task))

    def execute_task(self, wrapped: Wrapped, agent: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        task = _call_arg(args, kwargs, 0, "task")
        if not self._observes_agent(agent, task):
            return wrapped(*args, **kwargs)
        with self._agent_span(agent, task) as span, _Step((id(agent), id(task))):
            result = wrapped(*args, **kwargs)
            self._after_agent(span, result)
            return result

    def aexecute_task(self, wrapped: Wrapped, agent: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        task = _call_arg(args, kwargs, 0, "task")
        if not self._observes_agent(agent, task):
            return wrapped(*args, **kwargs)

        async def observed() -> Any:
            with self._agent_span(agent, task) as span, _Step((id(agent), id(task))):
                result = await wrapped(*args, **kwargs)
                self._after_agent(span, result)
                return result

        return observed()

    # -- tools ------------------------------------------------------------

    def _tool_span(self, tool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        attributes = attrs.safe_attributes(attrs.tool_attributes, tool)
        if self.capture_content:
            arguments = attrs.content_text(kwargs.get("input", kwargs) if kwargs else list(args))
            if arguments is not None:
                attributes[attrs.GEN_AI_TOOL_CALL_ARGUMENTS] = arguments
        return SpanScope(self.tracer, f"execute_tool {attributes.get(attrs.GEN_AI_TOOL_NAME, 'tool')}", attributes)

    def _after_tool(self, span: Span, result: Any) -> None:
        if self.capture_content and span.is_recording():
            output = attrs.content_text(result)
            if output is not None:
                span.set_attribute(attrs.GEN_AI_TOOL_CALL_RESULT, output)

    @staticmethod
    def _tool_key(tool: Any) -> tuple[int, ...]:
        # By name: a structured tool and the BaseTool it was made from are one call.
        return (hash(attrs.tool_name(tool)),)

    def run_tool(self, wrapped: Wrapped, tool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        key = self._tool_key(tool)
        if not is_instrumentation_enabled() or _active_step.get() == key:
            return wrapped(*args, **kwargs)
        with self._tool_span(tool, args, kwargs) as span, _Step(key):
            result = wrapped(*args, **kwargs)
            self._after_tool(span, result)
            return result

    def arun_tool(self, wrapped: Wrapped, tool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        key = self._tool_key(tool)
        if not is_instrumentation_enabled() or _active_step.get() == key:
            return wrapped(*args, **kwargs)

        async def observed() -> Any:
            with self._tool_span(tool, args, kwargs) as span, _Step(key):
                result = await wrapped(*args, **kwargs)
                self._after_tool(span, result)
                return result

        return observed()

    # -- threads CrewAI starts bare ------------------------------------------

    def leave_context(self, key_argument: tuple[int, str] | None) -> Callable[..., Any]:
        """Wrapper for a method that starts a thread: leave the context, keyed by
        the instance (or by the argument at ``key_argument``)."""

        def leave(wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            self.handoff.leave(self._handoff_key(instance, args, kwargs, key_argument))
            return wrapped(*args, **kwargs)

        return leave

    def take_context(self, key_argument: tuple[int, str] | None) -> Callable[..., Any]:
        """Wrapper for the method that runs in that thread: run attached to the
        context that was left for it."""

        def take(wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            left = self.handoff.take(self._handoff_key(instance, args, kwargs, key_argument))
            if left is None:
                return wrapped(*args, **kwargs)
            token = otel_context.attach(left)
            try:
                return wrapped(*args, **kwargs)
            finally:
                otel_context.detach(token)

        return take

    @staticmethod
    def _handoff_key(
        instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], key_argument: tuple[int, str] | None
    ) -> tuple[str, int]:
        if key_argument is None:
            return ("instance", id(instance))
        return ("argument", id(_call_arg(args, kwargs, *key_argument)))
