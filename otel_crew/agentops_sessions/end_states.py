"""How a root span's outcome becomes an AgentOps end state and reason.

OK is "Success", ERROR is "Fail", UNSET is "Indeterminate", and a root that
otel-crew had to end itself (never closed, or open at shutdown) is
"Indeterminate" whatever its status. End states are plain strings: AgentOps
drops enum values from attributes.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from otel_crew.semconv import UNCLOSED_ATTRIBUTE

DEFAULT_END_STATES: Mapping[StatusCode, str] = {
    StatusCode.OK: "Success",
    StatusCode.ERROR: "Fail",
    StatusCode.UNSET: "Indeterminate",
}
UNCLOSED_END_STATE = "Indeterminate"


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


def end_state(root: ReadableSpan, states: Mapping[StatusCode, str] = DEFAULT_END_STATES) -> str:
    attributes = root.attributes or {}
    if attributes.get(UNCLOSED_ATTRIBUTE) is True:
        return UNCLOSED_END_STATE
    return states[root.status.status_code]


def end_reason(root: ReadableSpan) -> str:
    """The status description, else the type of the recorded exception, else ''."""
    if root.status.description:
        return root.status.description
    for event in root.events:
        if event.name == "exception" and event.attributes:
            return str(event.attributes.get("exception.type", ""))
    return ""
