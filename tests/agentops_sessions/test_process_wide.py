"""What otel-crew changes outside itself: nothing at construction, all undone at uninstrument.

The AgentOps guards, the export repair and the CrewAI hand-over go on at a
bridge's first span (or its instrument()) and come off at its shutdown; 100
instrument/uninstrument cycles leave the patched objects, the guard count and
the memory as one cycle does.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import pytest
from conftest import AGENTOPS, Spans, sdk_enabled
from crewai import Agent, Crew, Task
from crewai.tools import BaseTool

from otel_crew import OtelCrewInstrumentor, workflow
from otel_crew.agentops_sessions import crewai_handover, export_repair
from otel_crew.agentops_sessions.auto_end_guards import GUARDS
from otel_crew.agentops_sessions.processor import AgentOpsSessionProcessor
from otel_crew.roots.lifecycle import fork_hooks

pytestmark = pytest.mark.crewai

CYCLES = 100
MEMORY_GROWTH_BYTES = 4 * 1024 * 1024
"""Generous: a processor, its index and wrappers leaked per cycle would pass it
only if each were under 40 KB; the identity checks catch the structural leaks."""


@pytest.fixture(scope="module")
def agentops_sdk() -> Any:
    import agentops

    with sdk_enabled():
        agentops.init(auto_start_session=False, instrument_llm_calls=False)
    return agentops


def process_wide(agentops: Any) -> dict[str, Any]:
    """Every object otel-crew may replace, by identity."""
    import agentops.instrumentation as registry
    from agentops.sdk.exporters import AuthenticatedOTLPExporter

    objects = {
        "agentops.init": agentops.init,
        "agentops.end_session": agentops.end_session,
        "legacy Session.end_session": vars(agentops.legacy.Session).get("end_session"),
        "AuthenticatedOTLPExporter.export": vars(AuthenticatedOTLPExporter)["export"],
        "AgentOps' CrewAI registry entry": registry.AGENTIC_LIBRARIES["crewai"],
    }
    for owner, name in [(Crew, "kickoff"), (Crew, "kickoff_async"), (Agent, "execute_task"), (BaseTool, "run")]:
        objects[f"{owner.__name__}.{name}"] = vars(owner)[name]
    objects.update({f"Task.{name}": vars(Task).get(name) for name in ("execute_async", "_execute_task_async")})
    return objects


def changed(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    return [name for name, obj in before.items() if now[name] is not obj]


def processors(spans: Spans) -> tuple[Any, ...]:
    return tuple(spans.provider._active_span_processor._span_processors)


def one_cycle(spans: Spans, number: int) -> None:
    instrumentor = OtelCrewInstrumentor()
    instrumentor.instrument(tracer_provider=spans.provider, agentops="on")
    try:
        tracer = spans.provider.get_tracer("cycle")
        with (
            workflow(f"cycle-{number}", tracer_provider=spans.provider),
            tracer.start_as_current_span("invoke_workflow c", attributes={"gen_ai.operation.name": "invoke_workflow"}),
        ):
            assert GUARDS.installed >= 2 and export_repair.installed()  # on while a bridge runs
            assert crewai_handover.held()
    finally:
        instrumentor.uninstrument()


def test_constructing_a_bridge_changes_nothing_global(agentops_sdk: Any) -> None:
    before, hooks = process_wide(agentops_sdk), fork_hooks()
    bridge = AgentOpsSessionProcessor()
    assert changed(before, process_wide(agentops_sdk)) == []
    assert GUARDS.installed == 0 and not export_repair.installed() and not crewai_handover.held()
    assert fork_hooks() <= hooks + 1  # a weak entry in otel-crew's own list, not a new process hook
    bridge.shutdown()


def test_100_instrument_cycles_leave_everything_as_one_does(spans: Spans, agentops_sdk: Any) -> None:
    original, processors_before = process_wide(agentops_sdk), processors(spans)
    one_cycle(spans, 0)
    assert changed(original, process_wide(agentops_sdk)) == []
    assert GUARDS.installed == 0 and not export_repair.installed()
    assert processors(spans) == processors_before
    gc.collect()
    tracemalloc.start()
    try:
        one_cycle(spans, 1)
        gc.collect()
        after_one = tracemalloc.get_traced_memory()[0]
        for number in range(2, CYCLES + 1):
            one_cycle(spans, number)
        gc.collect()
        after_all = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert changed(original, process_wide(agentops_sdk)) == []
    assert GUARDS.installed == 0 and not export_repair.installed()
    assert processors(spans) == processors_before
    print(f"memory after {CYCLES} cycles minus after one: {after_all - after_one} bytes")  # for the record (-s)
    assert after_all - after_one < MEMORY_GROWTH_BYTES, after_all - after_one
    sessions = {span.name for span in AGENTOPS.sessions() if span.name.startswith("cycle-")}
    assert {f"cycle-{number}.session" for number in range(CYCLES + 1)} <= sessions  # every cycle's bridge worked


def test_a_guard_held_by_two_bridges_stays_until_both_are_gone(agentops_sdk: Any) -> None:
    original = agentops_sdk.end_session
    first, second = Spans(), Spans()
    for bridged in (first, second):
        bridged.provider.add_span_processor(AgentOpsSessionProcessor())
        bridged.provider.get_tracer("t").start_span("activates").end()
    wrapped = agentops_sdk.end_session
    assert GUARDS.installed >= 2 and getattr(wrapped, "__wrapped__", None) is not None
    assert wrapped.__wrapped__ is original  # one guard, not two stacked
    first.provider.shutdown()
    assert GUARDS.installed >= 2 and export_repair.installed()
    second.provider.shutdown()
    assert GUARDS.installed == 0 and not export_repair.installed()
