"""How a root span's outcome becomes an AgentOps end state and reason.

OK is "Success", ERROR is "Fail", UNSET is "Indeterminate", and a root that
otel-crew had to end itself (never closed, or open at shutdown) is
"Indeterminate" whatever its status. A span otel-crew made stays UNSET
exactly when its work returned, so such a root is "Success" (the OK state).
A flow run that paused for human feedback (``otel_crew.flow.paused``) ends
with the pause state, "Indeterminate" unless configured: the run is neither
done nor failed, and its resumed run gets a session of its own. End states are plain strings: AgentOps
drops enum values from attributes.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from otel_crew.semconv import FLOW_PAUSED_ATTRIBUTE, UNCLOSED_ATTRIBUTE

DEFAULT_END_STATES: Mapping[StatusCode, str] = {
    StatusCode.OK: "Success",
    StatusCode.ERROR: "Fail",
    StatusCode.UNSET: "Indeterminate",
}
UNCLOSED_END_STATE = "Indeterminate"
PAUSED_END_STATE = "Indeterminate"
_OUR_TRACER = "otel_crew"


def validated_end_states(overrides: Mapping[StatusCode, str] | None) -> dict[StatusCode, str]:
    """The default mapping with ``overrides`` applied; refuses what is not a
    StatusCode to non-empty str mapping."""
    states = dict(DEFAULT_END_STATES)
    for code, state in (overrides or {}).items():
        if not isinstance(code, StatusCode):
            raise TypeError(f"end_states: keys must be StatusCode, got {code!r}")
        if not isinstance(state, str) or not state:
            raise TypeError(f"end_states[{code.name}]: expected a non-empty str, got {state!r}")
        states[code] = state
    return states


def validated_paused_end_state(state: object) -> str:
    if not isinstance(state, str) or not state:
        raise TypeError(f"paused_end_state: expected a non-empty str, got {state!r}")
    return state


def _made_by_otel_crew(root: ReadableSpan) -> bool:
    scope = root.instrumentation_scope
    return scope is not None and scope.name == _OUR_TRACER


def end_state(
    root: ReadableSpan, states: Mapping[StatusCode, str] = DEFAULT_END_STATES, paused_state: str = PAUSED_END_STATE
) -> str:
    attributes = root.attributes or {}
    if attributes.get(UNCLOSED_ATTRIBUTE) is True:
        return UNCLOSED_END_STATE
    if attributes.get(FLOW_PAUSED_ATTRIBUTE) is True:
        return paused_state
    code = root.status.status_code
    if code is StatusCode.UNSET and _made_by_otel_crew(root):
        code = StatusCode.OK  # it returned
    return states[code]


def end_reason(root: ReadableSpan) -> str:
    """The status description, else the type of the recorded exception, else ''."""
    if root.status.description:
        return root.status.description
    for event in root.events:
        if event.name == "exception" and event.attributes:
            return str(event.attributes.get("exception.type", ""))
    return ""
