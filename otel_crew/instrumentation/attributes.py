"""The allow-listed, never-raising extraction of attribute values (names: ``otel_crew.semconv``).

Values are read from named fields only, never from an object's ``__dict__``:
a model's API key lives in that ``__dict__``. Every reader swallows its own
failures (logged at debug level) so that extraction can never break a kickoff.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

from opentelemetry.util.types import AttributeValue

from otel_crew.semconv import (
    CREWAI_CREW_ID,
    CREWAI_CREW_PROCESS,
    CREWAI_FLOW_NAME,
    CREWAI_FLOW_STEP,
    CREWAI_FLOW_STEP_KIND,
    CREWAI_KICKOFF_METHOD,
    CREWAI_TASK_ASYNC_EXECUTION,
    CREWAI_TASK_DESCRIPTION,
    CREWAI_TASK_NAME,
    GEN_AI_AGENT_ID,
    GEN_AI_AGENT_NAME,
    GEN_AI_CONVERSATION_ID,
    GEN_AI_OPERATION_NAME,
    GEN_AI_TOOL_NAME,
    GEN_AI_TOOL_TYPE,
    GEN_AI_WORKFLOW_NAME,
    OPERATION_EXECUTE_TOOL,
    OPERATION_INVOKE_AGENT,
    OPERATION_INVOKE_WORKFLOW,
)

_LOG = logging.getLogger(__name__)


DESCRIPTION_LIMIT = 256
"""Task descriptions are cut to this many characters."""

CONTENT_LIMIT = 4096
"""Captured content (inputs, outputs, tool arguments) is cut to this many characters."""


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bounded(value: Any, limit: int, depth: int = 0) -> Any:
    """A JSON-able copy of ``value`` whose strings and containers are cut early,
    so that a 10 MB string or a deep structure costs a bounded amount of work."""
    if isinstance(value, str):
        return truncate(value, limit)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if depth >= 4:
        return "…"
    if isinstance(value, Mapping):
        items = list(value.items())[:64]
        return {truncate(str(key), 128): _bounded(item, limit, depth + 1) for key, item in items}
    if isinstance(value, (list, tuple)):
        return [_bounded(item, limit, depth + 1) for item in value[:64]]
    return truncate(f"<{type(value).__name__}>", limit)


def content_text(value: Any, limit: int = CONTENT_LIMIT) -> str | None:
    """``value`` as bounded JSON text, or None when it cannot be shown."""
    try:
        if isinstance(value, str):
            return truncate(value, limit)
        raw = getattr(value, "raw", None)
        if isinstance(raw, str):  # CrewOutput and TaskOutput carry their text in .raw
            return truncate(raw, limit)
        return truncate(json.dumps(_bounded(value, limit), ensure_ascii=False), limit)
    except Exception:  # content must never break a kickoff
        _LOG.debug("otel-crew: could not render content", exc_info=True)
        return None


def safe_attributes(
    reader: Callable[..., Mapping[str, AttributeValue | None]], *args: Any
) -> dict[str, AttributeValue]:
    """Run ``reader(*args)`` and keep its non-None values; never raises."""
    try:
        return {key: value for key, value in reader(*args).items() if value is not None}
    except Exception:
        _LOG.debug("otel-crew: attribute extraction failed in %s", reader.__name__, exc_info=True)
        return {}


def _text(value: Any, limit: int = DESCRIPTION_LIMIT) -> str | None:
    if isinstance(value, str) and value:
        return value if len(value) <= limit else truncate(value, limit)
    return None


@functools.lru_cache(maxsize=1024)
def _uuid_text(identifier: uuid.UUID) -> str:
    # CrewAI ids are UUIDs whose str() is a Python-level format: worth remembering.
    return str(identifier)


def _id_text(identifier: Any) -> str | None:
    if isinstance(identifier, uuid.UUID):
        return _uuid_text(identifier)
    return _text(str(identifier or ""))


def _process_name(crew: Any) -> str | None:
    process = getattr(crew, "process", None)
    return _text(getattr(process, "value", process))


def crew_name(crew: Any) -> str:
    return _text(getattr(crew, "name", None)) or "crew"


def crew_attributes(crew: Any, method: str) -> dict[str, AttributeValue | None]:
    return {
        GEN_AI_OPERATION_NAME: OPERATION_INVOKE_WORKFLOW,
        GEN_AI_WORKFLOW_NAME: crew_name(crew),
        CREWAI_CREW_ID: _id_text(getattr(crew, "id", None)),
        CREWAI_CREW_PROCESS: _process_name(crew),
        CREWAI_KICKOFF_METHOD: method,
    }


def agent_role(agent: Any) -> str:
    return _text(getattr(agent, "role", None)) or "agent"


def agent_attributes(agent: Any, task: Any) -> dict[str, AttributeValue | None]:
    return {
        GEN_AI_OPERATION_NAME: OPERATION_INVOKE_AGENT,
        GEN_AI_AGENT_NAME: agent_role(agent),
        GEN_AI_AGENT_ID: _id_text(getattr(agent, "id", None)),
        CREWAI_TASK_NAME: _text(getattr(task, "name", None)),
        CREWAI_TASK_DESCRIPTION: _text(getattr(task, "description", None)),
        CREWAI_TASK_ASYNC_EXECUTION: bool(getattr(task, "async_execution", False)),
    }


def tool_name(tool: Any) -> str:
    return _text(getattr(tool, "name", None)) or "tool"


def tool_attributes(tool: Any) -> dict[str, AttributeValue | None]:
    return {
        GEN_AI_OPERATION_NAME: OPERATION_EXECUTE_TOOL,
        GEN_AI_TOOL_NAME: tool_name(tool),
        GEN_AI_TOOL_TYPE: "function",
    }


def agent_kickoff_attributes(agent: Any, conversation_id: str | None) -> dict[str, AttributeValue | None]:
    """An agent run on its own (``Agent.kickoff``), without a task."""
    return {
        GEN_AI_OPERATION_NAME: OPERATION_INVOKE_AGENT,
        GEN_AI_AGENT_NAME: agent_role(agent),
        GEN_AI_AGENT_ID: _id_text(getattr(agent, "id", None)),
        GEN_AI_CONVERSATION_ID: conversation_id,
    }


# -- flows -------------------------------------------------------------------


def flow_name(flow: Any) -> str:
    """The flow's ``name`` if set (CrewAI 1.x has the field), else its class name."""
    return _text(getattr(flow, "name", None)) or type(flow).__name__


def flow_id(flow: Any) -> str | None:
    """The flow state's id (``Flow.flow_id``, every line), or None."""
    return _id_text(getattr(flow, "flow_id", None))


def flow_run_attributes(flow: Any) -> dict[str, AttributeValue | None]:
    name = flow_name(flow)
    return {
        GEN_AI_OPERATION_NAME: OPERATION_INVOKE_WORKFLOW,
        GEN_AI_WORKFLOW_NAME: name,
        GEN_AI_CONVERSATION_ID: flow_id(flow),
        CREWAI_FLOW_NAME: name,
    }


def _step_kind(flow: Any, method: str) -> str:
    methods = getattr(getattr(flow, "_definition", None), "methods", None)
    if isinstance(methods, Mapping):  # CrewAI 1.x: the flow's definition
        definition = methods.get(method)
        if definition is not None:
            if getattr(definition, "router", False) is True:
                return "router"
            return "start" if getattr(definition, "is_start", False) is True else "listen"
    owner = type(flow)  # CrewAI 0.x: what FlowMeta collected on the class
    if method in (getattr(owner, "_routers", None) or ()):
        return "router"
    return "start" if method in (getattr(owner, "_start_methods", None) or ()) else "listen"


def flow_step_attributes(flow: Any, method: Any) -> dict[str, AttributeValue | None]:
    step = _text(str(method)) or "step"
    return {
        CREWAI_FLOW_NAME: flow_name(flow),
        CREWAI_FLOW_STEP: step,
        CREWAI_FLOW_STEP_KIND: _step_kind(flow, step),
    }


def router_route(result: Any) -> str | None:
    """A router's chosen route as CrewAI dispatches it (an Enum by its value), or None."""
    if result is None:
        return None
    return _text(str(result.value if isinstance(result, Enum) else result))
