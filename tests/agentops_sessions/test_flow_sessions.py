"""One AgentOps session per flow run, with real Flows and the real AgentOps SDK on loopback."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import AGENTOPS, CREWAI, Spans, instrumenting, sdk_enabled
from flow_examples import AsyncCrews, Branching, FailingStep, TwoCrews
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from otlp_receivers import ReceivedSpan
from test_session_processor import CREWAI_ENDS_SESSIONS, bridge_of, ended_by_tag, suppressed_calls

from otel_crew import workflow
from otel_crew.agentops_sessions.processor import AgentOpsSessionProcessor
from otel_crew.cli.local_model import LocalModelError

pytestmark = pytest.mark.crewai

needs_human_feedback = pytest.mark.skipif(CREWAI is None or CREWAI < (1, 0), reason="human feedback is CrewAI 1.x's")


@pytest.fixture(scope="module")
def agentops_client() -> Any:
    import agentops

    with sdk_enabled():
        agentops.init(auto_start_session=False, instrument_llm_calls=False)
    return agentops


@pytest.fixture
def bridged(spans: Spans, agentops_client: Any) -> Iterator[Spans]:
    with instrumenting(spans, agentops="on") as instrumented:
        yield instrumented


def trace_hex(span: Any) -> str:
    return f"{span.context.trace_id:032x}"


def sessions_of(trace_ids: set[str], expected: int) -> list[ReceivedSpan]:
    """Every session span AgentOps sent for these traces, once ``expected`` arrived (or 20 s) and
    AgentOps' exporter was flushed: one more would be here too."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len([s for s in AGENTOPS.sessions() if s.trace_id in trace_ids]) < expected:
        time.sleep(0.05)
    return [s for s in AGENTOPS.delivered() if s.trace_id in trace_ids]


def states(sessions: list[ReceivedSpan]) -> list[str]:
    return [str(s.attributes.get("agentops.session.end_state")) for s in sessions]


def open_session_of(bridge: AgentOpsSessionProcessor, root_name: str) -> bool:
    """Whether the session of the open root ``root_name`` is open and not yet ended."""
    (session,) = [s for s in bridge._open.values() if s.root.name == root_name]
    return session.trace_context is not None and session.trace_context.span.end_time is None


def test_a_two_crew_flow_has_one_session_ended_once_at_its_end(bridged: Spans) -> None:
    flow = TwoCrews()
    flow.probed = []
    flow.probe = lambda: open_session_of(bridge_of(bridged), "invoke_workflow TwoCrews")
    already = len(AGENTOPS.sessions())
    flow.kickoff()
    assert flow.probed == [True]  # after the first crew, the run's session is still open
    bridged.provider.force_flush()
    run = bridged.one("invoke_workflow TwoCrews")
    (session,) = sessions_of({trace_hex(run)}, 1)
    assert session.name == "invoke_workflow TwoCrews.session"
    assert states([session]) == ["Success"]
    assert session.parent_span_id == f"{run.context.span_id:016x}"
    assert [s.name for s in AGENTOPS.sessions()[already:]] == [session.name]  # the crews made none
    assert bridge_of(bridged).open_roots == 0 and bridge_of(bridged).index_size == 0


def test_a_failing_step_ends_the_session_fail(bridged: Spans) -> None:
    flow = FailingStep()
    flow.raised = []
    with pytest.raises(LocalModelError) as caught:
        flow.kickoff()
    assert caught.value is flow.raised[0]
    bridged.provider.force_flush()
    run = bridged.one("invoke_workflow FailingStep")
    assert states(sessions_of({trace_hex(run)}, 1)) == ["Fail"]


def test_flows_in_threads_get_one_session_each(bridged: Spans) -> None:
    paths = ["go_left", "go_right"] * 3
    errors: list[BaseException] = []

    def run(path: str) -> None:
        try:
            Branching().kickoff(inputs={"path": path})
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(path,)) for path in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    bridged.provider.force_flush()
    runs = bridged.named("invoke_workflow Branching")
    assert len(runs) == len(paths)
    sessions = sessions_of({trace_hex(run) for run in runs}, len(runs))
    assert sorted(s.trace_id for s in sessions) == sorted(trace_hex(run) for run in runs)
    assert states(sessions) == ["Success"] * len(runs)


def test_async_flows_gathered_get_one_session_each(bridged: Spans) -> None:
    async def main() -> None:
        await asyncio.gather(*(AsyncCrews().kickoff_async() for _ in range(3)))

    asyncio.run(main())
    bridged.provider.force_flush()
    runs = bridged.named("invoke_workflow AsyncCrews")
    sessions = sessions_of({trace_hex(run) for run in runs}, 3)
    assert sorted(s.trace_id for s in sessions) == sorted(trace_hex(run) for run in runs)
    assert states(sessions) == ["Success"] * 3


def test_a_flow_inside_workflow_uses_the_roots_session(bridged: Spans) -> None:
    with workflow("flow-pipeline", tracer_provider=bridged.provider) as root:
        TwoCrews().kickoff()
        Branching().kickoff(inputs={"path": "go_left"})
    bridged.provider.force_flush()
    sessions = sessions_of({f"{root.get_span_context().trace_id:032x}"}, 1)
    assert [(s.name, states([s])) for s in sessions] == [("flow-pipeline.session", ["Success"])]


@pytest.mark.skipif(not CREWAI_ENDS_SESSIONS, reason="CrewAI 0.95 to 0.164 end AgentOps sessions themselves")
def test_crewais_own_session_calls_are_suppressed_inside_a_flow(spans: Spans, agentops_client: Any) -> None:
    reader = InMemoryMetricReader()
    with sdk_enabled():
        meters = MeterProvider(metric_readers=[reader])
    tag = "mine-flow"
    with instrumenting(spans, meter_provider=meters, auto_end_session=False):
        users_session = agentops_client.start_session(tags=[tag])  # the "current" session CrewAI would end
        TwoCrews().kickoff()
        spans.provider.force_flush()
        assert [s for s in AGENTOPS.delivered() if tag in s.attributes.get("agentops.tags", [])] == []
        agentops_client.end_session("Success")
    assert users_session is not None
    assert [s.attributes["agentops.session.end_state"] for s in ended_by_tag(tag)] == ["Success"]
    assert suppressed_calls(reader) >= 2  # one per crew: init (0.105+) or end_session (0.102)


# -- pause and resume ------------------------------------------------------------------------


@needs_human_feedback
@pytest.mark.parametrize(("options", "expected"), [({}, "Indeterminate"), ({"paused_end_state": "Paused"}, "Paused")])
def test_a_paused_flow_ends_its_session_with_the_pause_state_and_the_resume_gets_its_own(
    spans: Spans, agentops_client: Any, options: dict[str, Any], expected: str
) -> None:
    from flow_pauses import Review

    with instrumenting(spans, agentops="on", **options):
        flow = Review()
        flow.kickoff()
        spans.provider.force_flush()
        (paused,) = spans.named("invoke_workflow Review")
        assert states(sessions_of({trace_hex(paused)}, 1)) == [expected]
        Review.from_pending(flow.flow_id).resume("fine")
        spans.provider.force_flush()
    (resumed,) = [run for run in spans.named("invoke_workflow Review") if run is not paused and run.links]
    assert states(sessions_of({trace_hex(resumed)}, 1)) == ["Success"]


def test_a_bad_paused_end_state_is_refused_naming_the_option() -> None:
    with pytest.raises(TypeError, match="paused_end_state"):
        AgentOpsSessionProcessor(paused_end_state="")
