"""Where an LLM call's tokens are counted, and what started inside the call: ``LLMUsageProcessor``.

Token totals: every open span of an agent run (``invoke_agent``), a crew kickoff or flow run
(``invoke_workflow``) and every root (a span with no local parent, or ``otel_crew.root``) gets a tally
when it starts. Each open span maps to the tallies it counts into: the nearest agent run's, and every
enclosing workflow's and root's. An LLM call adds its tokens to the tallies of the span it was made
under, and each tally writes its running total on its span at once (a span's attributes cannot change
once it ends). The map is keyed by span, so a call only ever reaches the spans above it: concurrent
roots, ``async_execution`` tasks and ``kickoff_for_each_async`` never share a tally they should not.
Per span, the hot path is one dict look-up and one dict store; a tally's lock is taken once per call.

Provider spans: while an LLM call runs, the spans started directly under the call's parent are kept on
the call, so that at its end the wrapper can tell whether a provider instrumentation recorded it
(``LLMCall.recorded_elsewhere``).
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_crew.semconv import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    INFERENCE_OPERATIONS,
    OPERATION_INVOKE_AGENT,
    OPERATION_INVOKE_WORKFLOW,
    ROOT_ATTRIBUTE,
    TOTAL_INPUT_TOKENS,
    TOTAL_OUTPUT_TOKENS,
)

__all__ = ["LLMCall", "LLMUsageProcessor", "Usage", "active_call"]

# Inference spans of instrumentations that predate gen_ai.operation.name: OpenLLMetry's, AgentOps', OpenInference's.
_LEGACY_INFERENCE = (("llm.request.type", "chat"), ("gen_ai.request.type", "chat"), ("openinference.span.kind", "LLM"))


@dataclass
class Usage:
    """The tokens of one call, as the provider reported them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    reasoning_output_tokens: int = 0

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_read_input_tokens += other.cache_read_input_tokens
        self.cache_creation_input_tokens += other.cache_creation_input_tokens
        self.reasoning_output_tokens += other.reasoning_output_tokens


@dataclass
class LLMCall:
    """One LLM call in flight: where it was made, and what it learnt on the way."""

    parent_context: Context
    parent_span_id: int
    started_ns: int = field(default_factory=time.time_ns)
    usage: Usage | None = None
    finish_reasons: list[str] = field(default_factory=list)
    response_id: str | None = None
    inner: list[Span] = field(default_factory=list)

    def add_usage(self, usage: Usage) -> None:
        if self.usage is None:
            self.usage = usage
        else:  # a provider that makes a follow-up request within one call reports each
            self.usage.add(usage)

    def recorded_elsewhere(self) -> bool:
        """Whether a span started directly under this call's parent while it ran is an inference span."""
        return any(_is_inference(span.attributes or {}) for span in self.inner)


active_call: contextvars.ContextVar[LLMCall | None] = contextvars.ContextVar("otel_crew_active_llm_call", default=None)


def _is_inference(attributes: Mapping[str, Any]) -> bool:
    if attributes.get(GEN_AI_OPERATION_NAME) in INFERENCE_OPERATIONS:
        return True
    return any(attributes.get(key) == value for key, value in _LEGACY_INFERENCE)


class _Tally:
    """The running token total of one span, written on it as it grows."""

    __slots__ = ("_input", "_input_name", "_lock", "_output", "_output_name", "_span")

    def __init__(self, span: Span, input_name: str, output_name: str) -> None:
        self._span = span
        self._input_name = input_name
        self._output_name = output_name
        self._input = 0
        self._output = 0
        self._lock = threading.Lock()

    def add(self, usage: Usage) -> None:
        with self._lock:  # the total written last is the whole total
            self._input += usage.input_tokens
            self._output += usage.output_tokens
            self._span.set_attribute(self._input_name, self._input)
            self._span.set_attribute(self._output_name, self._output)


@dataclass(frozen=True)
class _Owners:
    """The tallies a call made under a span counts into."""

    agent: _Tally | None
    wider: tuple[_Tally, ...]


_NOBODY = _Owners(None, ())


class LLMUsageProcessor(SpanProcessor):
    """Counts each LLM call's tokens into the spans above it; keeps the spans started inside a call."""

    def __init__(self) -> None:
        self._owners: dict[int, _Owners] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        parent = span.parent
        local_parent = parent is not None and not parent.is_remote
        inherited = self._owners.get(parent.span_id, _NOBODY) if local_parent else _NOBODY  # type: ignore[union-attr]
        call = active_call.get()
        if call is not None and local_parent and parent.span_id == call.parent_span_id:  # type: ignore[union-attr]
            call.inner.append(span)
        attributes = span.attributes or {}
        operation = attributes.get(GEN_AI_OPERATION_NAME)
        owners = inherited
        if operation == OPERATION_INVOKE_AGENT:
            owners = _Owners(_Tally(span, GEN_AI_USAGE_INPUT_TOKENS, GEN_AI_USAGE_OUTPUT_TOKENS), owners.wider)
        if operation == OPERATION_INVOKE_WORKFLOW or not local_parent or attributes.get(ROOT_ATTRIBUTE):
            owners = _Owners(owners.agent, (*owners.wider, _Tally(span, TOTAL_INPUT_TOKENS, TOTAL_OUTPUT_TOKENS)))
        self._owners[span.context.span_id] = owners

    def on_end(self, span: ReadableSpan) -> None:
        self._owners.pop(span.context.span_id, None)

    def count(self, parent_span_id: int, usage: Usage) -> None:
        """Add a call's tokens to the agent run, workflows and root above the span it was made under."""
        owners = self._owners.get(parent_span_id, _NOBODY)
        if owners.agent is not None:
            owners.agent.add(usage)
        for tally in owners.wider:
            tally.add(usage)

    def shutdown(self) -> None:
        self._owners.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
