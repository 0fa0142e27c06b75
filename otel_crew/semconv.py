"""Every span and metric attribute name otel-crew writes, in one place.

GenAI names come from ``opentelemetry-semantic-conventions`` (its incubating
``gen_ai`` attributes); the names that convention does not have are ours,
under ``otel_crew.*`` (the layer's own bookkeeping) and ``crewai.*`` (CrewAI
concepts). A leaf module: every subpackage may import it.
"""

from __future__ import annotations

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _gen_ai
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics as _gen_ai_metrics
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.schemas import Schemas

__all__ = [
    "CREWAI_CREW_ID",
    "CREWAI_CREW_PROCESS",
    "CREWAI_FLOW_INPUTS",
    "CREWAI_FLOW_NAME",
    "CREWAI_FLOW_OUTPUT",
    "CREWAI_FLOW_ROUTER_ROUTE",
    "CREWAI_FLOW_STEP",
    "CREWAI_FLOW_STEP_KIND",
    "CREWAI_KICKOFF_INPUTS",
    "CREWAI_KICKOFF_METHOD",
    "CREWAI_KICKOFF_OUTPUT",
    "CREWAI_TASK_ASYNC_EXECUTION",
    "CREWAI_TASK_DESCRIPTION",
    "CREWAI_TASK_NAME",
    "CREWAI_TASK_OUTPUT",
    "ERROR_TYPE",
    "FLOW_PAUSED_ATTRIBUTE",
    "GEN_AI_AGENT_ID",
    "GEN_AI_AGENT_NAME",
    "GEN_AI_CLIENT_OPERATION_DURATION",
    "GEN_AI_CLIENT_TOKEN_USAGE",
    "GEN_AI_CONVERSATION_ID",
    "GEN_AI_INPUT_MESSAGES",
    "GEN_AI_OPERATION_NAME",
    "GEN_AI_OUTPUT_MESSAGES",
    "GEN_AI_PROVIDER_NAME",
    "GEN_AI_REQUEST_MODEL",
    "GEN_AI_RESPONSE_FINISH_REASONS",
    "GEN_AI_RESPONSE_ID",
    "GEN_AI_RESPONSE_MODEL",
    "GEN_AI_TOKEN_TYPE",
    "GEN_AI_TOOL_CALL_ARGUMENTS",
    "GEN_AI_TOOL_CALL_RESULT",
    "GEN_AI_TOOL_NAME",
    "GEN_AI_TOOL_TYPE",
    "GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS",
    "GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS",
    "GEN_AI_USAGE_INPUT_TOKENS",
    "GEN_AI_USAGE_OUTPUT_TOKENS",
    "GEN_AI_USAGE_REASONING_OUTPUT_TOKENS",
    "GEN_AI_WORKFLOW_NAME",
    "INFERENCE_OPERATIONS",
    "OPERATION_CHAT",
    "OPERATION_EXECUTE_TOOL",
    "OPERATION_INVOKE_AGENT",
    "OPERATION_INVOKE_WORKFLOW",
    "OUTCOME_RAISED",
    "OUTCOME_RETURNED",
    "RECOVERED_ATTRIBUTE",
    "ROOT_ATTRIBUTE",
    "ROOT_OUTCOME_ATTRIBUTE",
    "SCHEMA_URL",
    "TOKEN_TYPE_INPUT",
    "TOKEN_TYPE_OUTPUT",
    "TOTAL_INPUT_TOKENS",
    "TOTAL_OUTPUT_TOKENS",
    "UNCLOSED_ATTRIBUTE",
]

SCHEMA_URL = Schemas.V1_43_0.value
"""The semantic-conventions schema the names below follow; tracers and meters carry it."""

GEN_AI_OPERATION_NAME = _gen_ai.GEN_AI_OPERATION_NAME
GEN_AI_WORKFLOW_NAME = _gen_ai.GEN_AI_WORKFLOW_NAME
GEN_AI_CONVERSATION_ID = _gen_ai.GEN_AI_CONVERSATION_ID
GEN_AI_AGENT_NAME = _gen_ai.GEN_AI_AGENT_NAME
GEN_AI_AGENT_ID = _gen_ai.GEN_AI_AGENT_ID
GEN_AI_TOOL_NAME = _gen_ai.GEN_AI_TOOL_NAME
GEN_AI_TOOL_TYPE = _gen_ai.GEN_AI_TOOL_TYPE
GEN_AI_TOOL_CALL_ARGUMENTS = _gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS
GEN_AI_TOOL_CALL_RESULT = _gen_ai.GEN_AI_TOOL_CALL_RESULT
GEN_AI_USAGE_INPUT_TOKENS = _gen_ai.GEN_AI_USAGE_INPUT_TOKENS
GEN_AI_USAGE_OUTPUT_TOKENS = _gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = _gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = _gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = _gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS
GEN_AI_PROVIDER_NAME = _gen_ai.GEN_AI_PROVIDER_NAME
GEN_AI_REQUEST_MODEL = _gen_ai.GEN_AI_REQUEST_MODEL
GEN_AI_RESPONSE_MODEL = _gen_ai.GEN_AI_RESPONSE_MODEL
GEN_AI_RESPONSE_ID = _gen_ai.GEN_AI_RESPONSE_ID
GEN_AI_RESPONSE_FINISH_REASONS = _gen_ai.GEN_AI_RESPONSE_FINISH_REASONS
GEN_AI_INPUT_MESSAGES = _gen_ai.GEN_AI_INPUT_MESSAGES
GEN_AI_OUTPUT_MESSAGES = _gen_ai.GEN_AI_OUTPUT_MESSAGES
GEN_AI_TOKEN_TYPE = _gen_ai.GEN_AI_TOKEN_TYPE
TOKEN_TYPE_INPUT = _gen_ai.GenAiTokenTypeValues.INPUT.value
TOKEN_TYPE_OUTPUT = _gen_ai.GenAiTokenTypeValues.OUTPUT.value

GEN_AI_CLIENT_TOKEN_USAGE = _gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE
GEN_AI_CLIENT_OPERATION_DURATION = _gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION

OPERATION_INVOKE_WORKFLOW = _gen_ai.GenAiOperationNameValues.INVOKE_WORKFLOW.value
OPERATION_INVOKE_AGENT = _gen_ai.GenAiOperationNameValues.INVOKE_AGENT.value
OPERATION_EXECUTE_TOOL = _gen_ai.GenAiOperationNameValues.EXECUTE_TOOL.value
OPERATION_CHAT = _gen_ai.GenAiOperationNameValues.CHAT.value
INFERENCE_OPERATIONS = frozenset(
    {OPERATION_CHAT, _gen_ai.GenAiOperationNameValues.TEXT_COMPLETION.value, "generate_content"}
)
"""Operation names of an inference span: one of these inside an LLM call means a provider instrumentation
recorded the call."""

# -- otel-crew's own ---------------------------------------------------------

ROOT_ATTRIBUTE = "otel_crew.root"
"""Set to true on the outermost ``workflow()`` span."""
UNCLOSED_ATTRIBUTE = "otel_crew.root.unclosed"
"""Set to true on a root that otel-crew had to end because nobody did."""
ROOT_OUTCOME_ATTRIBUTE = "otel_crew.root.outcome"
"""On a root span otel-crew made: how its work left, ``returned`` or ``raised``
(the AgentOps end state follows it, as the status stays UNSET on success)."""
OUTCOME_RETURNED = "returned"
OUTCOME_RAISED = "raised"
RECOVERED_ATTRIBUTE = "otel_crew.root.recovered"
"""Set to true on a root whose process died, ended by a later process."""
TOTAL_INPUT_TOKENS = "otel_crew.usage.input_tokens"
"""On a crew kickoff, a flow run and a root: the input tokens of every LLM call below it (the semconv
defines ``gen_ai.usage.*`` for inference and agent spans only; a backend summing those must not count
these too)."""
TOTAL_OUTPUT_TOKENS = "otel_crew.usage.output_tokens"
"""As ``TOTAL_INPUT_TOKENS``, for output tokens."""
FLOW_PAUSED_ATTRIBUTE = "otel_crew.flow.paused"
"""Set to true on a flow run that stopped to wait for human feedback."""

# -- CrewAI concepts ---------------------------------------------------------

CREWAI_CREW_ID = "crewai.crew.id"
CREWAI_CREW_PROCESS = "crewai.crew.process"
CREWAI_KICKOFF_METHOD = "crewai.kickoff.method"
CREWAI_KICKOFF_INPUTS = "crewai.kickoff.inputs"
CREWAI_KICKOFF_OUTPUT = "crewai.kickoff.output"
CREWAI_TASK_NAME = "crewai.task.name"
CREWAI_TASK_DESCRIPTION = "crewai.task.description"
CREWAI_TASK_ASYNC_EXECUTION = "crewai.task.async_execution"
CREWAI_TASK_OUTPUT = "crewai.task.output"
CREWAI_FLOW_NAME = "crewai.flow.name"
CREWAI_FLOW_STEP = "crewai.flow.step"
CREWAI_FLOW_STEP_KIND = "crewai.flow.step.kind"
CREWAI_FLOW_ROUTER_ROUTE = "crewai.flow.router.route"
CREWAI_FLOW_INPUTS = "crewai.flow.inputs"
CREWAI_FLOW_OUTPUT = "crewai.flow.output"
