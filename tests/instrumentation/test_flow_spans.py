"""Flow runs, their steps, and agents run on their own, as spans: real CrewAI Flows
with the local-model crews."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import CREWAI, Spans, instrumenting
from flow_examples import AgentSteps, AsyncCrews, Branching, FailingStep, Parallel, TwoCrews
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from otel_crew import UnclosedRootProcessor, workflow
from otel_crew.cli.demo_crews import researcher
from otel_crew.cli.local_model import LocalModelError
from otel_crew.instrumentation.flow import PAUSED_RUN_KEY

pytestmark = pytest.mark.crewai

HAS_HUMAN_FEEDBACK = CREWAI is not None and CREWAI >= (1, 0)
# 0.130 has Agent.kickoff, but its LiteAgent cannot be given a custom model
# ("Unable to create LLM instance"), so the local model cannot drive it there.
HAS_AGENT_KICKOFF = CREWAI is not None and CREWAI >= (1, 0)
needs_human_feedback = pytest.mark.skipif(not HAS_HUMAN_FEEDBACK, reason="human feedback is CrewAI 1.x's")
needs_agent_kickoff = pytest.mark.skipif(not HAS_AGENT_KICKOFF, reason="Agent.kickoff on a local model: 1.x")


@pytest.fixture
def traced(spans: Spans) -> Iterator[Spans]:
    with instrumenting(spans, agentops="off") as instrumented:
        yield instrumented


def attr(span: ReadableSpan, key: str) -> Any:
    assert span.attributes is not None
    return span.attributes.get(key)


def assert_unset(*spans: ReadableSpan) -> None:
    for span in spans:
        assert span.status.status_code is StatusCode.UNSET, (span.name, span.status)


def steps_of(spans: Spans, run: ReadableSpan) -> dict[str, ReadableSpan]:
    return {str(attr(step, "crewai.flow.step")): step for step in spans.children(run)}


def test_a_two_crew_flow_is_one_trace_one_root_with_a_span_per_step(traced: Spans) -> None:
    flow = TwoCrews()
    result = flow.kickoff()
    assert str(result).startswith("report")
    run = traced.one("invoke_workflow TwoCrews")
    assert run.parent is None
    assert {span.context.trace_id for span in traced.finished()} == {run.context.trace_id}
    assert [span.name for span in traced.finished() if span.parent is None] == [run.name]
    assert attr(run, "gen_ai.operation.name") == "invoke_workflow"
    assert attr(run, "gen_ai.workflow.name") == "TwoCrews"
    assert attr(run, "gen_ai.conversation.id") == flow.flow_id
    steps = steps_of(traced, run)
    assert set(steps) == {"research", "write"}
    assert steps["research"].name == "TwoCrews.research"
    assert attr(steps["research"], "crewai.flow.step.kind") == "start"
    assert attr(steps["write"], "crewai.flow.step.kind") == "listen"
    for step in steps.values():
        assert attr(step, "crewai.flow.name") == "TwoCrews"
        assert attr(step, "gen_ai.operation.name") is None
    assert [c.name for c in traced.children(steps["research"])] == ["invoke_workflow research"]
    assert [c.name for c in traced.children(steps["write"])] == ["invoke_workflow writing"]
    assert "execute_tool word_count" in [name for _, name in traced.tree(run)]
    agents = [s for s in traced.finished() if s.name.startswith("invoke_agent")]
    assert agents and all(attr(agent, "gen_ai.conversation.id") == flow.flow_id for agent in agents)
    assert_unset(run, *steps.values())
    # CrewAI's own flows (agent executors on 1.x) make no spans
    assert {s.name for s in traced.finished() if s.name.startswith("invoke_workflow")} == {
        run.name,
        "invoke_workflow research",
        "invoke_workflow writing",
    }


def test_a_flow_named_by_its_name_field(spans: Spans) -> None:
    if CREWAI is None or CREWAI < (1, 0):
        pytest.skip("the name field is CrewAI 1.x's")
    with instrumenting(spans, agentops="off"):
        Branching(name="routing-review").kickoff(inputs={"path": "go_left"})
    run = spans.one("invoke_workflow routing-review")
    assert attr(run, "gen_ai.workflow.name") == "routing-review"
    assert {s.name for s in spans.children(run)} == {
        "routing-review.begin",
        "routing-review.decide",
        "routing-review.left",
    }


def test_a_failing_step_makes_the_run_error_and_the_caller_gets_crewais_exception(traced: Spans) -> None:
    flow = FailingStep()
    flow.raised = []
    with pytest.raises(LocalModelError) as caught:
        flow.kickoff()
    assert flow.raised and caught.value is flow.raised[0]  # the step's own exception, untouched
    run = traced.one("invoke_workflow FailingStep")
    step = traced.one("FailingStep.doomed")
    for span in (run, step):
        assert span.status.status_code is StatusCode.ERROR
        assert attr(span, "error.type") == "otel_crew.cli.local_model.LocalModelError"
        assert [e.name for e in span.events] == ["exception"]
    assert step.parent is not None and step.parent.span_id == run.context.span_id


@pytest.mark.parametrize(("path", "taken"), [("go_left", "left"), ("go_right", "right")])
def test_a_router_records_its_route_and_only_that_branch_runs(traced: Spans, path: str, taken: str) -> None:
    Branching().kickoff(inputs={"path": path})
    run = traced.one("invoke_workflow Branching")
    steps = steps_of(traced, run)
    assert set(steps) == {"begin", "decide", taken}
    assert attr(steps["decide"], "crewai.flow.step.kind") == "router"
    assert attr(steps["decide"], "crewai.flow.router.route") == path
    assert attr(steps["begin"], "crewai.flow.router.route") is None
    assert_unset(run, *steps.values())


def test_parallel_steps_are_siblings_under_their_run(traced: Spans) -> None:
    Parallel().kickoff()
    run = traced.one("invoke_workflow Parallel")
    steps = traced.children(run)
    names = [attr(step, "crewai.flow.step") for step in steps]
    assert sorted(set(names)) == ["either", "fetch_async", "fetch_sync", "joined"]
    assert names.count("joined") == 1 and names.count("fetch_async") == 1 and names.count("fetch_sync") == 1
    assert len(traced.finished()) == 1 + len(steps)  # nothing else, nothing deeper
    assert_unset(run, *steps)


def test_async_flows_run_concurrently_each_in_its_own_trace(traced: Spans) -> None:
    flows = [AsyncCrews() for _ in range(3)]

    async def main() -> list[Any]:
        return await asyncio.gather(*(flow.kickoff_async() for flow in flows))

    results = asyncio.run(main())
    assert all(str(result).startswith("report") for result in results)
    runs = traced.named("invoke_workflow AsyncCrews")
    assert len(runs) == 3 and all(run.parent is None for run in runs)
    assert {attr(run, "gen_ai.conversation.id") for run in runs} == {flow.flow_id for flow in flows}
    assert len({run.context.trace_id for run in runs}) == 3
    for run in runs:
        tree = [name for _, name in traced.tree(run)]
        assert tree.count("AsyncCrews.gather_facts") == 1 and tree.count("AsyncCrews.summarise") == 1
        assert tree.count("invoke_workflow async-research") == 1
        in_trace = [s for s in traced.finished() if s.context.trace_id == run.context.trace_id]
        assert len(in_trace) == len(tree)  # every span of the trace hangs below its run


def test_akickoff_is_one_run(spans: Spans) -> None:
    if CREWAI is None or CREWAI < (1, 0):
        pytest.skip("akickoff is CrewAI 1.x's")
    with instrumenting(spans, agentops="off"):
        asyncio.run(Branching().akickoff(inputs={"path": "go_left"}))
    run = spans.one("invoke_workflow Branching")
    assert len(spans.children(run)) == 3


def test_kickoff_inside_a_running_loop_keeps_the_tree(spans: Spans) -> None:
    if CREWAI is None or CREWAI < (1, 0):
        pytest.skip("CrewAI 0.x's kickoff() cannot run inside a running loop (asyncio.run raises)")
    with instrumenting(spans, agentops="off"):
        tracer = spans.provider.get_tracer("user")

        async def handler() -> Any:
            with tracer.start_as_current_span("request"):
                return TwoCrews().kickoff()

        assert str(asyncio.run(handler())).startswith("report")
    request = spans.one("request")
    run = spans.one("invoke_workflow TwoCrews")
    assert run.parent is not None and run.parent.span_id == request.context.span_id
    steps = steps_of(spans, run)
    assert [c.name for c in spans.children(steps["research"])] == ["invoke_workflow research"]
    assert {s.context.trace_id for s in spans.finished()} == {request.context.trace_id}


def test_a_flow_inside_workflow_is_a_child_of_the_root(traced: Spans) -> None:
    with workflow("nightly", tracer_provider=traced.provider):
        TwoCrews().kickoff()
    root = traced.one("nightly")
    run = traced.one("invoke_workflow TwoCrews")
    assert run.parent is not None and run.parent.span_id == root.context.span_id
    assert {s.context.trace_id for s in traced.finished()} == {root.context.trace_id}


def test_content_is_on_flow_spans_only_when_asked(spans: Spans) -> None:
    with instrumenting(spans, agentops="off", capture_content=True):
        Branching().kickoff(inputs={"path": "go_right"})
    run = spans.one("invoke_workflow Branching")
    assert json.loads(attr(run, "crewai.flow.inputs")) == {"path": "go_right"}
    assert attr(run, "crewai.flow.output") == "right"
    assert attr(spans.one("Branching.right"), "crewai.flow.output") == "right"
    quiet = Spans()
    with instrumenting(quiet, agentops="off"):
        Branching().kickoff(inputs={"path": "go_right"})
    for span in quiet.finished():
        assert not any(key in (span.attributes or {}) for key in ("crewai.flow.inputs", "crewai.flow.output"))


# -- Agent.kickoff -------------------------------------------------------------------

RESEARCHER_CHILDREN = ["chat deterministic", "execute_tool word_count", "chat deterministic"]  # its LLM calls too


@needs_agent_kickoff
def test_agent_kickoff_alone_is_a_root_with_its_tool_below(traced: Spans) -> None:
    output = researcher().kickoff("count the words")
    assert str(output.raw).startswith("facts")
    agent = traced.one("invoke_agent Researcher")
    assert agent.parent is None
    assert attr(agent, "gen_ai.operation.name") == "invoke_agent"
    assert [c.name for c in traced.children(agent)] == RESEARCHER_CHILDREN
    assert [s.name for s in traced.finished() if s.parent is None] == ["invoke_agent Researcher"]


@needs_agent_kickoff
def test_agent_kickoff_async_alone_is_one_span(traced: Spans) -> None:
    asyncio.run(researcher().kickoff_async("count the words"))
    agent = traced.one("invoke_agent Researcher")
    assert agent.parent is None
    assert [c.name for c in traced.children(agent)] == RESEARCHER_CHILDREN


@needs_agent_kickoff
def test_agent_kickoff_inside_steps_is_a_child_of_its_step(traced: Spans) -> None:
    flow = AgentSteps()
    flow.kickoff()
    run = traced.one("invoke_workflow AgentSteps")
    steps = steps_of(traced, run)
    for step in ("ask_sync", "ask_async"):
        (agent,) = traced.children(steps[step])
        assert agent.name == "invoke_agent Researcher"
        assert attr(agent, "gen_ai.conversation.id") == flow.flow_id
        assert [c.name for c in traced.children(agent)] == RESEARCHER_CHILDREN
    assert len(traced.named("invoke_agent Researcher")) == 2


# -- pause and resume (CrewAI 1.x human feedback) ------------------------------------------


def run_pause_in_a_fresh_process() -> dict[str, Any]:
    here = os.path.dirname(__file__)
    tests = os.path.dirname(here)
    # the scenario uses the tests' flows
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.path.dirname(tests)])}
    result = subprocess.run(
        [sys.executable, os.path.join(here, "flow_pause_scenario.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return json.loads(line)  # type: ignore[no-any-return]


@needs_human_feedback
def test_a_paused_flow_ends_unset_paused_and_is_not_an_unclosed_root(spans: Spans) -> None:
    from flow_pauses import Review

    watcher = UnclosedRootProcessor(idle_timeout=3600)
    with instrumenting(spans, agentops="off", unclosed_roots=watcher):
        flow = Review()
        outcome = flow.kickoff()
    from crewai.flow.async_feedback import HumanFeedbackPending

    assert isinstance(outcome, HumanFeedbackPending)  # CrewAI returns the signal, unchanged
    assert PAUSED_RUN_KEY in outcome.context.metadata
    run = spans.one("invoke_workflow Review")
    step = spans.one("Review.draft")
    for span in (run, step):
        assert_unset(span)
        assert attr(span, "otel_crew.flow.paused") is True
        assert span.events == ()
    assert attr(run, "gen_ai.conversation.id") == flow.flow_id
    assert watcher.open_roots == 0 and watcher.index_size == 0
    assert spans.named("Review.publish") == []


@needs_human_feedback
def test_a_resume_in_the_same_process_is_a_new_root_linked_to_the_paused_run(traced: Spans) -> None:
    from flow_pauses import Review

    paused_flow = Review()
    paused_flow.kickoff()
    paused = traced.one("invoke_workflow Review")
    resumed_flow = Review.from_pending(paused_flow.flow_id)
    result = resumed_flow.resume("looks good")
    assert result == "published: looks good / {'team': 'docs'}"  # the user's metadata, without ours
    runs = traced.named("invoke_workflow Review")
    (resumed,) = [run for run in runs if run.context.span_id != paused.context.span_id]
    assert resumed.parent is None and resumed.context.trace_id != paused.context.trace_id
    assert attr(resumed, "gen_ai.conversation.id") == attr(paused, "gen_ai.conversation.id") == paused_flow.flow_id
    assert [(link.context.trace_id, link.context.span_id) for link in resumed.links] == [
        (paused.context.trace_id, paused.context.span_id)
    ]
    assert attr(resumed, "otel_crew.flow.paused") is None
    assert [s.name for s in traced.children(resumed)] == ["Review.publish"]
    assert_unset(resumed)


@pytest.mark.scenario
@needs_human_feedback
def test_a_resume_from_persisted_state_links_to_the_run_paused_in_another_process(traced: Spans) -> None:
    from flow_pauses import Review

    paused = run_pause_in_a_fresh_process()
    resumed_flow = Review.from_pending(paused["flow_id"])
    assert resumed_flow.resume("ship it").startswith("published: ship it")
    resumed = traced.one("invoke_workflow Review")
    assert resumed.parent is None
    assert attr(resumed, "gen_ai.conversation.id") == paused["flow_id"]
    (link,) = resumed.links
    assert (f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}") == (
        paused["trace_id"],
        paused["span_id"],
    )


# -- uninstrument ----------------------------------------------------------------------------


def test_uninstrument_restores_every_flow_and_agent_method(spans: Spans) -> None:
    from crewai import Agent

    from otel_crew.instrumentation.flow import flow_class_module

    module = __import__(flow_class_module(), fromlist=["Flow"])
    names = ("kickoff", "kickoff_async", "akickoff", "resume_async", "_execute_method")
    flow_before = {name: vars(module.Flow).get(name) for name in names}
    agent_before = {name: vars(Agent).get(name) for name in ("kickoff", "kickoff_async")}
    with instrumenting(spans, agentops="off"):
        assert vars(module.Flow)["kickoff"] is not flow_before["kickoff"]
        assert vars(module.Flow)["_execute_method"] is not flow_before["_execute_method"]
    assert {name: vars(module.Flow).get(name) for name in names} == flow_before
    assert {name: vars(Agent).get(name) for name in ("kickoff", "kickoff_async")} == agent_before
    Branching().kickoff(inputs={"path": "go_left"})
    assert spans.finished() == []


# -- extraction never raises -----------------------------------------------------------------


class Hostile:
    """A flow-shaped object whose every field raises on read."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no {name}")


def test_flow_attribute_extraction_never_raises() -> None:
    from otel_crew.instrumentation import attributes as attrs

    assert attrs.safe_attributes(attrs.flow_run_attributes, Hostile()) == {}
    assert attrs.safe_attributes(attrs.flow_step_attributes, Hostile(), "step") == {}
    assert attrs.router_route(None) is None


def test_a_router_returning_an_enum_records_its_value() -> None:
    import enum

    from otel_crew.instrumentation import attributes as attrs

    class Route(enum.Enum):
        LEFT = "go_left"

    assert attrs.router_route(Route.LEFT) == "go_left"
