"""LLM calls on real traffic: CrewAI's own LLM talks to the loopback server; each call is one inference span
under the agent that made it, and the tokens add up per agent, crew and root."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import CREWAI, Spans, instrumenting, sdk_enabled
from crewai import LLM, Agent, Crew, Task
from llm_pipeline import API_KEY, MODEL, agent, crew, model, two_crews
from llm_server import Failure, LLMServer, Slow
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from otel_crew import workflow

pytestmark = pytest.mark.crewai

ON_1X = CREWAI is not None and CREWAI >= (1, 0)
# CrewAI 0.102's LLM cannot stream (it reads a LiteLLM stream as a whole reply); 0.130 and 1.x can.
STREAMING = [False, True] if CREWAI is not None and CREWAI >= (0, 130) else [False]


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def tokens(span: ReadableSpan, prefix: str = "gen_ai.usage") -> tuple[Any, Any]:
    found = attributes(span)
    return found.get(f"{prefix}.input_tokens"), found.get(f"{prefix}.output_tokens")


def totals(span: ReadableSpan) -> tuple[Any, Any]:
    return tokens(span, "otel_crew.usage")


def chats(spans: Spans) -> list[ReadableSpan]:
    return [span for span in spans.finished() if attributes(span).get("gen_ai.operation.name") == "chat"]


def parent_of(spans: Spans, span: ReadableSpan) -> ReadableSpan:
    assert span.parent is not None
    return next(s for s in spans.finished() if s.context.span_id == span.parent.span_id)


def assert_pipeline(spans: Spans, ours: bool = True) -> None:
    """The issue's picture: 5 inference spans under the right agents; agent, crew and root totals."""
    calls = chats(spans)
    assert len(calls) == 5, [s.name for s in spans.finished()]
    assert totals(spans.one("pipeline")) == (500, 100)
    exported = {span.context.span_id for span in spans.finished()}
    if not ours and any(call.parent is None or call.parent.span_id not in exported for call in calls):
        pytest.xfail(
            "AgentOps' CrewAI spans (AgentOps initialised by an earlier test) are current inside agents on "
            "CrewAI 0.x: the provider instrumentation's span hangs from them (AgentOps export repair's business)"
        )
    per_agent = [parent_of(spans, call).name for call in sorted(calls, key=lambda s: s.start_time or 0)]
    assert per_agent == [
        "invoke_agent Researcher",
        "invoke_agent Researcher",
        "invoke_agent Writer",
        "invoke_agent Editor",
        "invoke_agent Publisher",
    ]
    for call in calls:
        assert call.name == f"chat {MODEL}" and call.kind is SpanKind.CLIENT
        assert tokens(call) == (100, 20)
        assert attributes(call)["gen_ai.request.model"] == MODEL
        if ours:
            assert attributes(call)["gen_ai.provider.name"] == "openai"
    assert [tokens(spans.one(f"invoke_agent {role}")) for role in ("Researcher", "Writer", "Editor", "Publisher")] == [
        (200, 40),
        (100, 20),
        (100, 20),
        (100, 20),
    ]
    assert totals(spans.one("invoke_workflow research")) == (300, 60)
    assert totals(spans.one("invoke_workflow publish")) == (200, 40)
    assert totals(spans.one("pipeline")) == (500, 100)


@pytest.mark.parametrize("stream", STREAMING)
def test_two_crews_make_five_inference_spans_with_totals(
    instrumented: Spans, llm_server: LLMServer, stream: bool
) -> None:
    research, publish = two_crews(llm_server, stream=stream)
    with workflow("pipeline"):
        research.kickoff()
        publish.kickoff()
    assert_pipeline(instrumented)
    assert len(llm_server.requests) == 5
    if stream and ON_1X:
        assert all(request.streaming for request in llm_server.requests)


@pytest.fixture
def genai_openai(spans: Spans) -> Iterator[Spans]:
    """The official OpenAI provider instrumentation on the same provider as otel-crew."""
    from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor

    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=spans.provider)
    try:
        yield spans
    finally:
        instrumentor.uninstrument()


@pytest.mark.parametrize("stream", STREAMING)
def test_with_the_openai_instrumentation_still_one_span_per_call(
    genai_openai: Spans, llm_server: LLMServer, stream: bool
) -> None:
    research, publish = two_crews(llm_server, stream=stream)
    with instrumenting(genai_openai), workflow("pipeline"):
        research.kickoff()
        publish.kickoff()
    assert_pipeline(genai_openai, ours=False)
    scopes = {call.instrumentation_scope.name for call in chats(genai_openai) if call.instrumentation_scope}
    assert "otel_crew" not in scopes  # the provider instrumentation's spans are the ones


def test_llm_spans_off_keeps_totals_and_makes_no_span(spans: Spans, llm_server: LLMServer) -> None:
    research, publish = two_crews(llm_server)
    with instrumenting(spans, llm_spans=False), workflow("pipeline"):
        research.kickoff()
        publish.kickoff()
    assert chats(spans) == []
    assert totals(spans.one("pipeline")) == (500, 100)
    assert tokens(spans.one("invoke_agent Researcher")) == (200, 40)


def test_a_failed_call_is_an_error_span_and_the_error_reaches_crewai(
    instrumented: Spans, llm_server: LLMServer
) -> None:
    llm_server.default = Failure(500)
    failing = crew("failing", agent("Writer", llm_server, max_retries=0))
    with pytest.raises(Exception, match="loopback server error"):
        failing.kickoff()
    calls = chats(instrumented)
    assert calls, instrumented.names()
    for call in calls:
        assert call.status.status_code is StatusCode.ERROR
        # the openai SDK's error on 1.x native providers, LiteLLM's on its path
        assert attributes(call)["error.type"].rsplit(".", 1)[-1] in {"InternalServerError", "APIError"}
        assert parent_of(instrumented, call).name == "invoke_agent Writer"


def test_concurrent_roots_keep_their_own_totals(instrumented: Spans, llm_server: LLMServer) -> None:
    def run(index: int) -> None:
        pipeline = crew(f"crew{index}", *[agent(f"Agent{index}-{n}", llm_server) for n in range(index + 1)])
        with workflow(f"root{index}"):
            pipeline.kickoff()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index in range(3):
        calls = index + 1
        assert totals(instrumented.one(f"root{index}")) == (100 * calls, 20 * calls)
        assert totals(instrumented.one(f"invoke_workflow crew{index}")) == (100 * calls, 20 * calls)
    assert len(chats(instrumented)) == 6


def test_concurrent_roots_in_asyncio_tasks(instrumented: Spans, llm_server: LLMServer) -> None:
    async def run(index: int) -> None:
        pipeline = crew(f"crew{index}", *[agent(f"Agent{index}-{n}", llm_server) for n in range(index + 1)])
        async with workflow(f"root{index}"):
            await pipeline.kickoff_async()

    async def main() -> None:
        await asyncio.gather(*(run(index) for index in range(3)))

    asyncio.run(main())
    for index in range(3):
        assert totals(instrumented.one(f"root{index}")) == (100 * (index + 1), 20 * (index + 1))


def test_metrics_on_the_given_meter_provider(spans: Spans, llm_server: LLMServer) -> None:
    reader = InMemoryMetricReader()
    with sdk_enabled():
        meters = MeterProvider(metric_readers=[reader])
    with instrumenting(spans, meter_provider=meters):
        crew("solo", agent("Writer", llm_server)).kickoff()
    data = reader.get_metrics_data()
    assert data is not None
    points = {
        metric.name: metric.data.data_points
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    by_type = {point.attributes["gen_ai.token.type"]: point.sum for point in points["gen_ai.client.token.usage"]}
    assert by_type == {"input": 100, "output": 20}
    [duration] = points["gen_ai.client.operation.duration"]
    assert duration.count == 1 and duration.attributes["gen_ai.request.model"] == MODEL


@pytest.mark.parametrize("capture", [False, True])
def test_no_secret_in_any_attribute_and_content_only_on_opt_in(
    spans: Spans, llm_server: LLMServer, capture: bool
) -> None:
    host_port = llm_server.url.removeprefix("http://")
    base_url = f"http://user:hunter2pass@{host_port}/v1"
    writer = Agent(
        role="Writer",
        goal="Do it",
        backstory="Able.",
        llm=LLM(
            model=f"openai/{MODEL}",
            base_url=base_url,
            api_key=API_KEY,
            extra_headers={"Authorization": "Bearer bearer-secret-token"},
        ),
        max_retry_limit=0,
    )
    with instrumenting(spans, capture_content=capture):
        crew("solo", writer).kickoff()
    [call] = chats(spans)
    assert ("gen_ai.input.messages" in attributes(call)) is capture
    assert ("gen_ai.output.messages" in attributes(call)) is capture
    for span in spans.finished():
        text = repr(attributes(span)) + repr([event.attributes for event in span.events])
        for secret in (API_KEY, "hunter2pass", "bearer-secret-token"):
            assert secret not in text, (span.name, secret)


@pytest.mark.skipif(not ON_1X, reason="CrewAI's native Anthropic provider is 1.x")
@pytest.mark.parametrize("stream", [False, True])
def test_native_anthropic_provider(instrumented: Spans, llm_server: LLMServer, stream: bool) -> None:
    pytest.importorskip("anthropic")
    claude = LLM(model="anthropic/claude-test", base_url=llm_server.url, api_key=API_KEY, stream=stream)
    writer = Agent(role="Writer", goal="Do it", backstory="Able.", llm=claude, max_retry_limit=0)
    with workflow("pipeline"):
        crew("solo", writer).kickoff()
    [call] = chats(instrumented)
    assert call.name == "chat claude-test"
    assert attributes(call)["gen_ai.provider.name"] == "anthropic"
    assert tokens(call) == (100, 20)
    assert tokens(instrumented.one("invoke_agent Writer")) == (100, 20)
    assert totals(instrumented.one("pipeline")) == (100, 20)
    assert [r.path for r in llm_server.requests if not r.path.endswith("count_tokens")] == ["/v1/messages"]


@pytest.mark.skipif(not ON_1X, reason="on 0.130 and 0.102 every LLM is LiteLLM's: the tests above")
@pytest.mark.parametrize("beside_openai_instrumentation", [False, True])
@pytest.mark.parametrize("stream", STREAMING)
def test_litellm_path_makes_five_inference_spans_with_totals(
    spans: Spans, llm_server: LLMServer, stream: bool, beside_openai_instrumentation: bool, request: Any
) -> None:
    """CrewAI 1.x's LiteLLM-backed ``LLM`` (``is_litellm=True``: no native provider class), alone and with
    the OpenAI instrumentation on the same provider (LiteLLM calls the openai SDK: its span is the one)."""
    pytest.importorskip("litellm")
    if beside_openai_instrumentation:
        request.getfixturevalue("genai_openai")
    research, publish = two_crews(llm_server, stream=stream, is_litellm=True)
    assert {type(a.llm) for c in (research, publish) for a in c.agents} == {LLM}  # not OpenAICompletion
    with instrumenting(spans), workflow("pipeline"):
        research.kickoff()
        publish.kickoff()
    assert_pipeline(spans, ours=not beside_openai_instrumentation)
    assert [sent.streaming for sent in llm_server.requests] == [stream] * 5
    scopes = {call.instrumentation_scope.name for call in chats(spans) if call.instrumentation_scope}
    # Beside the OpenAI instrumentation, whichever records them records all: LiteLLM 1.110 posts through the
    # openai client's raw ``post`` (not ``chat.completions.create``, which the instrumentation wraps), so
    # there otel-crew's spans are the ones; were it to record them, they would be its.
    assert len(scopes) == 1 if beside_openai_instrumentation else scopes == {"otel_crew"}
    if not beside_openai_instrumentation:
        # LiteLLM's completion report (text replies only: the tool call's reply makes none) gives these
        for call in sorted(chats(spans), key=lambda s: s.start_time or 0)[1:]:
            assert attributes(call)["gen_ai.response.finish_reasons"] == ("stop",)
            assert attributes(call)["gen_ai.response.id"].startswith("chatcmpl-")


@pytest.mark.skipif(not ON_1X, reason="a native async kickoff (and LLM.acall) is CrewAI 1.x's")
@pytest.mark.parametrize("is_litellm", [False, True])
def test_native_async_kickoff_calls_are_spans_too(instrumented: Spans, llm_server: LLMServer, is_litellm: bool) -> None:
    if is_litellm:
        pytest.importorskip("litellm")
    research, publish = two_crews(llm_server, is_litellm=is_litellm)

    async def pipeline() -> None:
        async with workflow("pipeline"):
            await research.akickoff()
            await publish.akickoff()

    asyncio.run(pipeline())
    assert_pipeline(instrumented)


def test_async_execution_tasks_and_kickoff_for_each_async_keep_totals_apart(
    instrumented: Spans, llm_server: LLMServer
) -> None:
    first, second, last = (agent(role, llm_server) for role in ("First", "Second", "Last"))
    parallel = [
        Task(description=f"Part {n}", expected_output="text", agent=a, async_execution=True)
        for n, a in enumerate((first, second))
    ]
    closing = Task(description="Join", expected_output="text", agent=last, context=parallel)
    crew_with_async = Crew(agents=[first, second, last], tasks=[*parallel, closing], name="parallel")
    per_input = crew("each", agent("Each", llm_server))

    async def for_each() -> None:
        await per_input.kickoff_for_each_async([{"n": 1}, {"n": 2}])

    with workflow("pipeline"):
        crew_with_async.kickoff()
        asyncio.run(for_each())
    for role in ("First", "Second", "Last"):
        assert tokens(instrumented.one(f"invoke_agent {role}")) == (100, 20), role
    assert totals(instrumented.one("invoke_workflow parallel")) == (300, 60)
    each = instrumented.named("invoke_workflow each")
    assert [totals(span) for span in each] == [(100, 20), (100, 20)]
    assert [tokens(span) for span in instrumented.named("invoke_agent Each")] == [(100, 20), (100, 20)]
    assert totals(instrumented.one("pipeline")) == (500, 100)
    assert len(chats(instrumented)) == 5


def test_a_timed_out_call_is_an_error_span(instrumented: Spans, llm_server: LLMServer) -> None:
    llm_server.default = Slow(30)  # held until the client gives up (the server's stop releases it)
    slow = crew("slow", agent("Writer", llm_server, timeout=0.5, max_retries=0))
    with pytest.raises(Exception, match=r"(?i)timed? ?out"):
        slow.kickoff()
    calls = chats(instrumented)
    assert calls and all(call.status.status_code is StatusCode.ERROR for call in calls)
    for call in calls:  # CrewAI 1.x re-raises the SDK's timeout as a ConnectionError; LiteLLM as its Timeout
        said = f"{attributes(call)['error.type']} {call.status.description}".lower()
        assert "timeout" in said or "timed out" in said, said


def test_uninstrument_puts_every_llm_class_back(spans: Spans, llm_server: LLMServer) -> None:
    from otel_crew.cli.local_model import local_model

    classes = {type(model(llm_server)), type(local_model())}
    before = {cls: {name: vars(cls).get(name) for name in ("call", "acall")} for cls in classes}
    with instrumenting(spans):
        assert all(vars(cls).get("call") is not before[cls]["call"] for cls in classes)  # wrapped, mixin's too
    assert {cls: {name: vars(cls).get(name) for name in ("call", "acall")} for cls in classes} == before
