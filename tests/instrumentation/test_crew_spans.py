"""The span tree of real crews, run offline by the deterministic local model."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from conftest import CREWAI, Spans
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from otel_crew import workflow
from otel_crew.cli.demo_crews import failing_crew, hierarchical_crew, research_crew
from otel_crew.cli.local_model import LocalModelError

pytestmark = pytest.mark.crewai

INPUT_TOKENS, TOTAL_INPUT_TOKENS = "gen_ai.usage.input_tokens", "otel_crew.usage.input_tokens"
LLM_CALL = "chat deterministic"  # the local model's calls (model "local/deterministic")
RESEARCH_TREE = [
    (0, "invoke_workflow research"),
    (1, "invoke_agent Researcher"),
    (2, LLM_CALL),
    (2, "execute_tool word_count"),
    (2, LLM_CALL),
    (1, "invoke_agent Writer"),
    (2, LLM_CALL),
]


def attribute(span: ReadableSpan, key: str) -> Any:
    assert span.attributes is not None
    return span.attributes.get(key)


def assert_one_trace(spans: Spans) -> None:
    assert len({span.context.trace_id for span in spans.finished()}) == 1


def test_two_crews_under_one_root_make_one_trace(instrumented: Spans) -> None:
    with workflow("nightly-report"):
        first = research_crew().kickoff(inputs={"topic": "otel"})
        second = research_crew(name="writing").kickoff(inputs={"topic": "crews"})
    assert first.raw.startswith("report") and second.raw.startswith("report")
    root = instrumented.one("nightly-report")
    assert instrumented.tree(root) == [
        (0, "nightly-report"),
        *[(depth + 1, name) for depth, name in RESEARCH_TREE],
        *[(depth + 1, name.replace("research", "writing")) for depth, name in RESEARCH_TREE],
    ]
    assert_one_trace(instrumented)
    for span in instrumented.finished():
        assert span.kind is (SpanKind.CLIENT if span.name == LLM_CALL else SpanKind.INTERNAL)
        # only workflow() sets OK; the spans otel-crew makes for CrewAI stay UNSET on success
        expected = StatusCode.OK if span.name == "nightly-report" else StatusCode.UNSET
        assert span.status.status_code is expected, span.name
        assert "error.type" not in (span.attributes or {}), span.name


def test_kickoff_span_attributes_follow_the_genai_conventions(instrumented: Spans) -> None:
    crew = research_crew()
    crew.kickoff(inputs={"topic": "otel"})
    kickoff = instrumented.one("invoke_workflow research")
    assert kickoff.parent is None  # nothing was current: the kickoff is its own root
    assert attribute(kickoff, "gen_ai.operation.name") == "invoke_workflow"
    assert attribute(kickoff, "gen_ai.workflow.name") == "research"
    assert attribute(kickoff, "crewai.crew.id") == str(crew.id)
    assert attribute(kickoff, "crewai.crew.process") == "sequential"
    assert attribute(kickoff, "crewai.kickoff.method") == "kickoff"
    agent = instrumented.one("invoke_agent Researcher")
    assert attribute(agent, "gen_ai.operation.name") == "invoke_agent"
    assert attribute(agent, "gen_ai.agent.name") == "Researcher"
    assert attribute(agent, "crewai.task.description") == "Research otel"
    tool = instrumented.one("execute_tool word_count")
    assert attribute(tool, "gen_ai.operation.name") == "execute_tool"
    assert attribute(tool, "gen_ai.tool.name") == "word_count"
    assert attribute(tool, "gen_ai.tool.call.arguments") is None  # no content by default


def test_async_execution_task_keeps_its_parent(instrumented: Spans) -> None:
    with workflow("p"):
        research_crew(async_first=True).kickoff(inputs={"topic": "otel"})
    root = instrumented.one("p")
    assert instrumented.tree(root) == [(0, "p"), *[(d + 1, n) for d, n in RESEARCH_TREE]]
    assert attribute(instrumented.one("invoke_agent Researcher"), "crewai.task.async_execution") is True
    assert_one_trace(instrumented)


def test_agents_under_a_time_limit_keep_their_parent(instrumented: Spans) -> None:
    """A time limit runs the agent's work in a thread CrewAI starts (since 0.130): before
    1.11 otel-crew carries the context there, from 1.11 CrewAI does."""
    crew = research_crew()
    for agent in crew.agents:
        agent.max_execution_time = 120
    with workflow("p"):
        crew.kickoff(inputs={"topic": "otel"})
    assert instrumented.tree(instrumented.one("p")) == [(0, "p"), *[(d + 1, n) for d, n in RESEARCH_TREE]]
    assert_one_trace(instrumented)


def test_hierarchical_crew_nests_the_delegated_work(instrumented: Spans) -> None:
    with workflow("p"):
        hierarchical_crew().kickoff(inputs={"topic": "otel"})
    tree = instrumented.tree(instrumented.one("p"))
    assert tree == [
        (0, "p"),
        (1, "invoke_workflow managed"),
        (2, "invoke_agent Crew Manager"),
        (3, LLM_CALL),
        (3, "execute_tool Delegate work to coworker"),
        (4, "invoke_agent Researcher"),
        (5, LLM_CALL),
        (5, "execute_tool word_count"),
        (5, LLM_CALL),
        (3, LLM_CALL),
    ]
    assert attribute(instrumented.one("invoke_workflow managed"), "crewai.crew.process") == "hierarchical"
    assert_one_trace(instrumented)
    # Each agent's total is its own calls (the manager's excludes the coworker's); the crew's and the root's all.
    calls = instrumented.named(LLM_CALL)
    for role in ("Crew Manager", "Researcher"):
        agent = instrumented.one(f"invoke_agent {role}")
        own = [call for call in calls if call in instrumented.children(agent)]
        assert len(own) == 2
        assert attribute(agent, "gen_ai.usage.input_tokens") == sum(
            attribute(c, "gen_ai.usage.input_tokens") for c in own
        )
    everything = sum(attribute(call, "gen_ai.usage.input_tokens") for call in calls)
    for name in ("p", "invoke_workflow managed"):
        assert attribute(instrumented.one(name), TOTAL_INPUT_TOKENS) == everything


def test_failing_task_marks_agent_kickoff_and_root(instrumented: Spans) -> None:
    with pytest.raises(LocalModelError), workflow("p"):
        failing_crew().kickoff(inputs={"topic": "otel"})
    for name in ("p", "invoke_workflow failing", "invoke_agent Writer"):
        span = instrumented.one(name)
        assert span.status.status_code is StatusCode.ERROR, name
        assert "LocalModelError" in (span.status.description or "")
        assert attribute(span, "error.type") == "otel_crew.cli.local_model.LocalModelError", name
        assert [event.name for event in span.events].count("exception") == 1, name
    # CrewAI's retries happen inside one agent step, not as extra spans.
    assert len(instrumented.named("invoke_agent Writer")) == 1


def test_failing_tool_is_an_error_span_and_the_crew_goes_on(instrumented: Spans) -> None:
    from crewai import Agent, Crew, Task

    from otel_crew.cli.demo_crews import Explode
    from otel_crew.cli.local_model import local_model

    agent = Agent(
        role="Tester",
        goal="g",
        backstory="b",
        llm=local_model("survived", tool_name="explode", tool_input={"text": "x"}),
        tools=[Explode()],
    )
    crew = Crew(agents=[agent], tasks=[Task(description="try", expected_output="x", agent=agent)], name="t")
    assert crew.kickoff().raw.startswith("survived")
    tools = instrumented.named("execute_tool explode")
    assert tools and all(span.status.status_code is StatusCode.ERROR for span in tools)
    assert all(attribute(span, "error.type") for span in tools)
    kickoff = instrumented.one("invoke_workflow t")
    assert kickoff.status.status_code is StatusCode.UNSET
    assert attribute(kickoff, "otel_crew.root.outcome") == "returned"  # a bare kickoff is a root


def test_kickoff_for_each_makes_one_span_per_input_under_the_caller(instrumented: Spans) -> None:
    with workflow("batch"):
        research_crew().kickoff_for_each(inputs=[{"topic": "a"}, {"topic": "b"}, {"topic": "c"}])
    root = instrumented.one("batch")
    kickoffs = instrumented.children(root)
    assert [span.name for span in kickoffs] == ["invoke_workflow research"] * 3
    assert {attribute(span, "crewai.kickoff.method") for span in kickoffs} == {"kickoff_for_each"}
    assert len(instrumented.finished()) == 1 + 3 * len(RESEARCH_TREE)
    assert_one_trace(instrumented)


def test_kickoff_async_and_for_each_async(instrumented: Spans) -> None:
    async def pipeline() -> None:
        async with workflow("async-batch"):
            await research_crew().kickoff_async(inputs={"topic": "a"})
            await research_crew().kickoff_for_each_async(inputs=[{"topic": "b"}, {"topic": "c"}])

    asyncio.run(pipeline())
    root = instrumented.one("async-batch")
    methods = sorted(attribute(span, "crewai.kickoff.method") for span in instrumented.children(root))
    assert methods == ["kickoff_async", "kickoff_for_each_async", "kickoff_for_each_async"]
    assert len(instrumented.finished()) == 1 + 3 * len(RESEARCH_TREE)
    assert_one_trace(instrumented)


@pytest.mark.skipif(CREWAI is None or CREWAI < (1, 7), reason="akickoff exists from CrewAI 1.7")
def test_native_akickoff(instrumented: Spans) -> None:
    async def pipeline() -> None:
        async with workflow("native"):
            await research_crew().akickoff(inputs={"topic": "a"})

    asyncio.run(pipeline())
    root = instrumented.one("native")
    assert instrumented.tree(root) == [(0, "native"), *[(d + 1, n) for d, n in RESEARCH_TREE]]
    assert attribute(instrumented.one("invoke_workflow research"), "crewai.kickoff.method") == "akickoff"


@pytest.mark.skipif(CREWAI is None or CREWAI < (1, 0), reason="stream=True exists on CrewAI 1.x")
def test_streaming_kickoff_spans_the_real_work_under_the_caller(instrumented: Spans) -> None:
    with workflow("streamed"):
        stream = research_crew(stream=True).kickoff(inputs={"topic": "a"})
        assert instrumented.named("invoke_workflow research") == []  # only the stream exists yet
    list(stream)  # the work happens while the stream is read, after the root ended
    root = instrumented.one("streamed")
    assert instrumented.tree(root) == [(0, "streamed"), *[(d + 1, n) for d, n in RESEARCH_TREE]]
    assert stream.result.raw.startswith("report")


def test_two_roots_in_two_threads_do_not_cross(instrumented: Spans) -> None:
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def pipeline(name: str) -> None:
        try:
            with workflow(name):
                barrier.wait()
                research_crew(name=f"crew-{name}", async_first=True).kickoff(inputs={"topic": name})
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=pipeline, args=(name,)) for name in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for name in ("left", "right"):
        root = instrumented.one(name)
        tree = instrumented.tree(root)
        assert tree == [
            (0, name),
            *[(d + 1, n.replace("research", f"crew-{name}")) for d, n in RESEARCH_TREE],
        ]
        below = [s for s in instrumented.finished() if s.context.trace_id == root.context.trace_id]
        assert len(below) == len(tree)
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_spans_of_another_provider_never_become_parents(instrumented: Spans) -> None:
    """AgentOps makes its session span current from its own provider: a kickoff
    must not hang under it (the user's backend never sees that span)."""
    foreign = Spans()
    foreign_tracer = foreign.provider.get_tracer("agentops-like")
    with foreign_tracer.start_as_current_span("foreign.session"):
        research_crew().kickoff(inputs={"topic": "a"})
        with workflow("p"), foreign_tracer.start_as_current_span("foreign.in-between"):
            research_crew(name="inner").kickoff(inputs={"topic": "b"})
    assert instrumented.one("invoke_workflow research").parent is None
    inner = instrumented.one("invoke_workflow inner")
    assert inner.parent is not None and inner.parent.span_id == instrumented.one("p").context.span_id
    assert instrumented.one("p").parent is None


TELEMETRY_SCRIPT = """
import os
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

sdk_switch = os.environ.pop("OTEL_SDK_DISABLED", None)  # see conftest: CrewAI 0.102
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)  # the user's provider is the global one
if sdk_switch:
    os.environ["OTEL_SDK_DISABLED"] = sdk_switch

from otel_crew import OtelCrewInstrumentor
OtelCrewInstrumentor().instrument(tracer_provider=provider)
from otel_crew.cli.demo_crews import research_crew
research_crew().kickoff(inputs={"topic": "x"})
for span in exporter.get_finished_spans():
    print(span.instrumentation_scope.name, span.name, sep="|")
os._exit(0)
"""


@pytest.mark.scenario
def test_crewai_telemetry_spans_stay_out_of_the_users_provider() -> None:
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    result = subprocess.run(
        [sys.executable, "-c", TELEMETRY_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    rows = [line.split("|") for line in result.stdout.splitlines() if "|" in line]
    ours = sorted(name for scope, name in rows if scope == "otel_crew")
    assert ours == sorted(name for _, name in RESEARCH_TREE), result.stderr[-2000:]
    assert not [name for scope, name in rows if scope.startswith("crewai.telemetry")]
