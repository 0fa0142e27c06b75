"""Tools: ``execute_tool {tool name}`` around a tool call (``BaseTool.run``,
``CrewStructuredTool.invoke`` and their async forms; CrewAI's layering of
one over the other makes one span)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import Span

from otel_crew.instrumentation import attributes as attrs
from otel_crew.instrumentation.calls import StepMarker, Wrapped, active_step
from otel_crew.instrumentation.llm_usage import outside_llm_call
from otel_crew.roots.scope import SpanScope
from otel_crew.semconv import GEN_AI_TOOL_CALL_ARGUMENTS, GEN_AI_TOOL_CALL_RESULT, GEN_AI_TOOL_NAME


@dataclass
class ToolWrappers:
    """The tool wrappers, bound to one tracer and one content policy."""

    tracer: trace.Tracer
    capture_content: bool

    def _tool_span(self, tool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        attributes = attrs.safe_attributes(attrs.tool_attributes, tool)
        if self.capture_content:
            arguments = attrs.content_text(kwargs.get("input", kwargs) if kwargs else list(args))
            if arguments is not None:
                attributes[GEN_AI_TOOL_CALL_ARGUMENTS] = arguments
        return SpanScope(self.tracer, f"execute_tool {attributes.get(GEN_AI_TOOL_NAME, 'tool')}", attributes)

    def _after_tool(self, span: Span, result: Any) -> None:
        if self.capture_content and span.is_recording():
            output = attrs.content_text(result)
            if output is not None:
                span.set_attribute(GEN_AI_TOOL_CALL_RESULT, output)

    @staticmethod
    def _tool_key(tool: Any) -> tuple[int, ...]:
        # By name: a structured tool and the BaseTool it was made from are one call.
        return (hash(attrs.tool_name(tool)),)

    def run_tool(self, wrapped: Wrapped, tool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        key = self._tool_key(tool)
        if not is_instrumentation_enabled() or active_step.get() == key:
            return wrapped(*args, **kwargs)
        with outside_llm_call(), self._tool_span(tool, args, kwargs) as span, StepMarker(key):
            result = wrapped(*args, **kwargs)
            self._after_tool(span, result)
            return result

    def arun_tool(self, wrapped: Wrapped, tool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        key = self._tool_key(tool)
        if not is_instrumentation_enabled() or active_step.get() == key:
            return wrapped(*args, **kwargs)

        async def observed() -> Any:
            with outside_llm_call(), self._tool_span(tool, args, kwargs) as span, StepMarker(key):
                result = await wrapped(*args, **kwargs)
                self._after_tool(span, result)
                return result

        return observed()
