"""otel-crew's spans of a session's root, handed to AgentOps as one tree under the session span.

What is forwarded (``forwarded_at_start``): every span otel-crew makes below a
root (crew kickoffs, flow runs and steps, agents, tools, LLM calls) and every
LLM inference span of a provider instrumentation (its ``gen_ai.operation.name``).
The root itself is not: AgentOps has the session span in its place.

Parents (the processor's ``anchor_of`` map, kept from ``on_start``): each
forwarded span hangs, in AgentOps' copy, from its nearest forwarded
ancestor, or from the session span when it has none below the root; a span
of the user's in between is skipped over. So every parent AgentOps receives
is among what it receives.

The copy (``agentops_copy``) keeps the span's ids and trace (the session is a
child of the root, in the root's trace), takes AgentOps' resource, and adds
what AgentOps' views read: ``agentops.span.kind``, and on LLM calls AgentOps'
own attribute names beside the semconv ones (``gen_ai.system``,
``gen_ai.usage.prompt_tokens``, ``completion_tokens``, ``total_tokens``). The
user's own span is never changed. Copies go to AgentOps' own batch processor
(``deliver``), so they travel with AgentOps' spans through its exporter.

Keyed by root (the processor's session record) and trace id only: spans whose
root lives in another process can be fed in the same way once their session is
known.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext
from opentelemetry.util.types import AttributeValue

from otel_crew.semconv import (
    CREWAI_FLOW_STEP,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    INFERENCE_OPERATIONS,
    OPERATION_EXECUTE_TOOL,
    OPERATION_INVOKE_AGENT,
    OPERATION_INVOKE_WORKFLOW,
)

__all__ = ["SESSION_ANCHOR", "agentops_copy", "deliver", "forwarded_at_start"]

_LOG = logging.getLogger(__name__)

OUR_SCOPE = "otel_crew"
SESSION_ANCHOR = 0
"""An anchor meaning "the session span" (no span id is 0)."""

SPAN_KIND = "agentops.span.kind"  # AgentOps' own attribute, read by its views
_KIND_OF_OPERATION = {
    OPERATION_INVOKE_WORKFLOW: "workflow",
    OPERATION_INVOKE_AGENT: "agent",
    OPERATION_EXECUTE_TOOL: "tool",
    **dict.fromkeys(INFERENCE_OPERATIONS, "llm"),
}
# AgentOps' own LLM span names (its OpenAI instrumentor's), from the semconv ones.
AGENTOPS_SYSTEM = "gen_ai.system"
AGENTOPS_PROMPT_TOKENS = "gen_ai.usage.prompt_tokens"
AGENTOPS_COMPLETION_TOKENS = "gen_ai.usage.completion_tokens"
AGENTOPS_TOTAL_TOKENS = "gen_ai.usage.total_tokens"


def forwarded_at_start(span: ReadableSpan) -> bool:
    """Whether AgentOps gets a copy of ``span`` (a span below a root, in ``on_start``)."""
    scope = span.instrumentation_scope
    if scope is not None and scope.name == OUR_SCOPE:
        return True
    attributes = span.attributes
    return attributes is not None and attributes.get(GEN_AI_OPERATION_NAME) in INFERENCE_OPERATIONS


def _agentops_attributes(attributes: Mapping[str, AttributeValue]) -> dict[str, AttributeValue]:
    copied = dict(attributes)
    operation = attributes.get(GEN_AI_OPERATION_NAME)
    kind = "task" if CREWAI_FLOW_STEP in attributes else _KIND_OF_OPERATION.get(str(operation))
    if kind is not None:
        copied.setdefault(SPAN_KIND, kind)
    if kind != "llm":
        return copied
    system = attributes.get(AGENTOPS_SYSTEM, attributes.get(GEN_AI_PROVIDER_NAME))
    if system is not None:
        copied[AGENTOPS_SYSTEM] = system
    prompt = attributes.get(GEN_AI_USAGE_INPUT_TOKENS)
    completion = attributes.get(GEN_AI_USAGE_OUTPUT_TOKENS)
    if isinstance(prompt, int):
        copied[AGENTOPS_PROMPT_TOKENS] = prompt
    if isinstance(completion, int):
        copied[AGENTOPS_COMPLETION_TOKENS] = completion
    if isinstance(prompt, int) and isinstance(completion, int):
        copied[AGENTOPS_TOTAL_TOKENS] = prompt + completion
    return copied


def agentops_copy(span: ReadableSpan, parent: SpanContext, resource: Any) -> ReadableSpan:
    """AgentOps' copy of ``span``: its parent ``parent``, AgentOps' ``resource``, AgentOps' names added."""
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=parent,
        resource=resource,
        attributes=_agentops_attributes(span.attributes or {}),
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _exporting_processors(provider: Any) -> list[Any]:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    processors: Iterable[Any] = getattr(getattr(provider, "_active_span_processor", None), "_span_processors", ())
    return [p for p in processors if isinstance(p, (BatchSpanProcessor, SimpleSpanProcessor))]


def deliver(copies: list[ReadableSpan]) -> None:
    """Hand ``copies`` to AgentOps' exporting processors (not its terminal printer)."""
    from agentops.sdk.core import tracer

    for processor in _exporting_processors(tracer.provider):
        for copy in copies:
            processor.on_end(copy)


def agentops_resource() -> Any:
    from agentops.sdk.core import tracer

    return getattr(tracer.provider, "resource", None)
