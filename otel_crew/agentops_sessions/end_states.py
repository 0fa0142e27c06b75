"""How a root span's outcome becomes an AgentOps end state and reason.

The outcome decides, not a status otel-crew set (its spans stay UNSET on
success): a root that succeeded (status OK, or ``otel_crew.root.outcome`` =
``returned`` on a root otel-crew made) is "Success"; one that failed (status
ERROR, or outcome ``raised``) is "Fail"; any other root (a plain OTel span
ended UNSET) is "Indeterminate", and so is a root otel-crew had to end itself
(never closed, or open at shutdown), whatever its status. A flow run that
paused for human feedback (``otel_crew.flow.paused``) ends with the pause
state, "Indeterminate" unless configured: the run is neither done nor failed,
and its resumed run gets a session of its own.

The override mapping keeps its StatusCode keys, read as outcomes: OK for
success, ERROR for failure, UNSET for neither. End states are plain strings:
AgentOps drops enum values from attributes.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from otel_crew.semconv import (
    FLOW_PAUSED_ATTRIBUTE,
    OUTCOME_RAISED,
    OUTCOME_RETURNED,
    ROOT_OUTCOME_ATTRIBUTE,
    UNCLOSED_ATTRIBUTE,
)

DEFAULT_END_STATES: Mapping[StatusCode, str] = {
    StatusCode.OK: "Success",
    StatusCode.ERROR: "Fail",
    StatusCode.UNSET: "Indeterminate",
}
UNCLOSED_END_STATE = "Indeterminate"
PAUSED_END_STATE = "Indeterminate"


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


def outcome(root: ReadableSpan) -> StatusCode:
    """The root's outcome as a StatusCode: OK succeeded, ERROR failed, UNSET
    neither. A status the user set wins over the outcome otel-crew recorded (a
    body that returns after judging its work bad)."""
    code = root.status.status_code
    if code is not StatusCode.UNSET:
        return code
    recorded = (root.attributes or {}).get(ROOT_OUTCOME_ATTRIBUTE)
    if recorded == OUTCOME_RETURNED:
        return StatusCode.OK
    if recorded == OUTCOME_RAISED:
        return StatusCode.ERROR
    return StatusCode.UNSET


def end_state(
    root: ReadableSpan, states: Mapping[StatusCode, str] = DEFAULT_END_STATES, paused_state: str = PAUSED_END_STATE
) -> str:
    attributes = root.attributes or {}
    if attributes.get(UNCLOSED_ATTRIBUTE) is True:
        return UNCLOSED_END_STATE
    if attributes.get(FLOW_PAUSED_ATTRIBUTE) is True:
        return paused_state
    return states[outcome(root)]


def end_reason(root: ReadableSpan) -> str:
    """The status description, else the type of the recorded exception, else ''."""
    if root.status.description:
        return root.status.description
    for event in root.events:
        if event.name == "exception" and event.attributes:
            return str(event.attributes.get("exception.type", ""))
    return ""
