"""The cheapest instrumentation that records otel-crew's spans: the floor in place.

``BareSpansInstrumentor`` opens one plain SDK span (a name, no attributes, no
processors of its own) around each CrewAI method where otel-crew opens one: the
kickoff, each agent's task, the tool call. What it adds to a kickoff is what
the SDK itself costs for those spans *inside* a kickoff, where CrewAI's work
between two spans has moved the SDK's code and data out of the CPU caches,
unlike the floor measured in a tight loop.
"""

from __future__ import annotations

from typing import Any

import wrapt
from opentelemetry import trace

# (module, class, method, span name), for the CrewAI versions the benchmarks run.
_TARGETS = (
    ("crewai", "Crew", "kickoff", "invoke_workflow"),
    ("crewai", "Agent", "execute_task", "invoke_agent"),
    ("crewai.tools.structured_tool", "CrewStructuredTool", "invoke", "execute_tool"),
)


def _owner(module_name: str, class_name: str) -> type:
    owner: type = getattr(__import__(module_name, fromlist=[class_name]), class_name)
    return owner


class BareSpansInstrumentor:
    """``instrument(tracer_provider=...)`` / ``uninstrument()``, like the real ones."""

    def __init__(self) -> None:
        self._originals: list[tuple[type, str, Any]] = []

    def instrument(self, tracer_provider: trace.TracerProvider) -> None:
        tracer = tracer_provider.get_tracer("bare spans")
        for module_name, class_name, method, span_name in _TARGETS:
            owner = _owner(module_name, class_name)
            self._originals.append((owner, method, vars(owner)[method]))

            def spanned(wrapped: Any, _instance: Any, args: Any, kwargs: Any, name: str = span_name) -> Any:
                with tracer.start_as_current_span(name):
                    return wrapped(*args, **kwargs)

            wrapt.wrap_function_wrapper(owner, method, spanned)

    def uninstrument(self) -> None:
        for owner, method, original in reversed(self._originals):
            setattr(owner, method, original)
        self._originals.clear()
