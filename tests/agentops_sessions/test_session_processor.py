"""AgentOps sessions owned by the root span, with the real AgentOps SDK on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pytest
from agentops_server import TOKEN
from conftest import AGENTOPS, CREWAI, Spans, sdk_enabled
from crashes import rows
from fault_servers import SERVERS
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags

from otel_crew import OtelCrewInstrumentor, UnclosedRootProcessor, workflow
from otel_crew.agentops_sessions.processor import AgentOpsSessionProcessor
from otel_crew.cli.demo_crews import research_crew
from otel_crew.roots.journal import journal_at
from otel_crew.semconv import GEN_AI_OPERATION_NAME, OPERATION_INVOKE_WORKFLOW

pytestmark = pytest.mark.crewai

CREWAI_ENDS_SESSIONS = CREWAI is not None and (0, 95) <= CREWAI < (0, 165)


HERE = os.path.dirname(__file__)


def run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a scenario script of this folder in a fresh process (which uses the
    tests' helpers, and the otel_crew this process imports)."""
    path = [HERE, os.path.dirname(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]
    return subprocess.run(
        [sys.executable, os.path.join(HERE, script), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(path)},
        timeout=300,
        check=False,
    )


def run_scenario(script: str, case: str) -> list[dict[str, Any]]:
    """Run a scenario script of this folder in a fresh process; its JSON lines."""
    result = run_script(script, case)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def run_seed(case: str) -> list[dict[str, Any]]:
    return run_scenario("seed_scenario.py", case)


def at(lines: list[dict[str, Any]], label: str) -> list[list[str]]:
    (line,) = [line for line in lines if line.get("at") == label]
    return line["sessions"]  # type: ignore[no-any-return]


@pytest.mark.scenario
@pytest.mark.skipif(not CREWAI_ENDS_SESSIONS, reason="CrewAI 0.95 to 0.164 end AgentOps sessions themselves")
def test_without_otel_crew_crewai_ends_the_session_after_the_first_crew() -> None:
    lines = run_seed("baseline")
    assert [[name, state] for name, state, _ in at(lines, "after first crew")] == [["default.session", "Success"]]
    # the second crew ran with no session left: nothing more was ended
    assert [[name, state] for name, state, _ in at(lines, "after second crew")] == [["default.session", "Success"]]


@pytest.mark.scenario
def test_with_otel_crew_one_session_ends_when_the_root_ends() -> None:
    lines = run_seed("otel-crew")
    root_trace = next(line["root_trace_id"] for line in lines if "root_trace_id" in line)
    assert at(lines, "after first crew") == []
    assert at(lines, "after root") == [["nightly-report.session", "Success", root_trace]]


@pytest.mark.scenario
def test_a_failing_second_crew_ends_the_session_fail() -> None:
    lines = run_seed("otel-crew-failing")
    assert {"raised": "LocalModelError"} in lines
    assert at(lines, "after first crew") == []
    assert [[name, state] for name, state, _ in at(lines, "after root")] == [["nightly-report.session", "Fail"]]


# -- in this process: one AgentOps client for the module --------------------------


@pytest.fixture(scope="module")
def agentops_sdk() -> Any:
    import agentops
    from conftest import sdk_enabled

    with sdk_enabled():
        agentops.init(auto_start_session=False, instrument_llm_calls=False)
    return agentops


@contextmanager
def bridging(spans: Spans, agentops: Any = "on") -> Iterator[Spans]:
    instrumentor = OtelCrewInstrumentor()
    instrumentor.instrument(tracer_provider=spans.provider, agentops=agentops)
    try:
        yield spans
    finally:
        instrumentor.uninstrument()


@pytest.fixture
def bridged(spans: Spans, agentops_sdk: Any) -> Iterator[Spans]:
    with bridging(spans) as bridged_spans:
        yield bridged_spans


@pytest.fixture
def patiently_bridged(spans: Spans, agentops_sdk: Any) -> Iterator[Spans]:
    """Bridged with a flush that waits long enough for hundreds of session ends."""
    with bridging(spans, AgentOpsSessionProcessor(flush_timeout=120)) as bridged_spans:
        yield bridged_spans


def bridge_of(spans: Spans) -> AgentOpsSessionProcessor:
    (bridge,) = [
        p for p in spans.provider._active_span_processor._span_processors if isinstance(p, AgentOpsSessionProcessor)
    ]
    return bridge


def ended_sessions(prefix: str, expected: int) -> dict[str, list[str]]:
    """Session name -> end states received, for sessions whose name starts with ``prefix``: once ``expected``
    have arrived, read after a flush of AgentOps' exporter (a session not there then will not come)."""

    def states(sessions: list[Any]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for span in sessions:
            if span.name.startswith(prefix):
                found.setdefault(span.name, []).append(str(span.attributes.get("agentops.session.end_state")))
        return found

    deadline = time.monotonic() + 20
    while sum(map(len, states(AGENTOPS.sessions()).values())) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return states(AGENTOPS.delivered())


def kickoff_span(spans: Spans, name: str = "crew") -> Any:
    """A kickoff span as any GenAI-convention CrewAI instrumentation makes it."""
    return spans.provider.get_tracer("any-crewai-instrumentation").start_as_current_span(
        f"invoke_workflow {name}", attributes={"gen_ai.operation.name": "invoke_workflow"}
    )


def test_800_roots_in_16_threads_each_end_their_own_session_once(patiently_bridged: Spans) -> None:
    bridged = patiently_bridged
    tracer = bridged.provider.get_tracer("test")
    errors: list[BaseException] = []

    def pipelines(thread: int) -> None:
        for number in range(50):
            name = f"many-{thread}-{number}"
            remote = SpanContext(
                trace_id=random.getrandbits(128),
                span_id=random.getrandbits(64),
                is_remote=True,
                trace_flags=TraceFlags(1),
            )
            request = trace.use_span(NonRecordingSpan(remote)) if number % 4 == 0 else nullcontext()
            try:
                with request, workflow(name, tracer_provider=bridged.provider):
                    with kickoff_span(bridged):
                        tracer.start_span("agent step").end()
                    if number % 3 == 0:
                        raise ValueError("this pipeline fails")
            except ValueError:
                pass
            except BaseException as error:  # surfaced below
                errors.append(error)

    threads = [threading.Thread(target=pipelines, args=(thread,)) for thread in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert bridged.provider.force_flush(60_000)
    sessions = ended_sessions("many-", 800)
    assert len(sessions) == 800
    for name, states in sessions.items():
        number = int(name.split("-")[2].split(".")[0])
        assert states == ["Fail" if number % 3 == 0 else "Success"], name
    assert bridge_of(bridged).open_roots == 0 and bridge_of(bridged).index_size == 0


def test_asyncio_tasks_each_get_their_own_session(bridged: Spans) -> None:
    async def pipeline(number: int) -> None:
        async with workflow(f"async-{number}", tracer_provider=bridged.provider) as root:
            with kickoff_span(bridged):
                await asyncio.sleep(0.01)
            if number % 2:
                root.set_status(Status(StatusCode.ERROR, "judged bad"))

    async def main() -> None:
        await asyncio.gather(*(pipeline(number) for number in range(20)))

    asyncio.run(main())
    bridged.provider.force_flush()
    sessions = ended_sessions("async-", 20)
    assert sessions == {f"async-{n}.session": ["Fail" if n % 2 else "Success"] for n in range(20)}


def test_a_root_never_ended_still_ends_its_session_at_shutdown(bridged: Spans) -> None:
    tracer = bridged.provider.get_tracer("test")
    forgotten = tracer.start_span("forgotten-root")
    with trace.use_span(forgotten), kickoff_span(bridged):
        pass
    with workflow("finished-root", tracer_provider=bridged.provider), kickoff_span(bridged):
        pass
    bridged.provider.shutdown()
    assert ended_sessions("forgotten-root", 1) == {"forgotten-root.session": ["Indeterminate"]}
    assert ended_sessions("finished-root", 1) == {"finished-root.session": ["Success"]}
    exported = bridged.one("forgotten-root")
    assert exported.attributes is not None and exported.attributes["otel_crew.root.unclosed"] is True


def test_a_bare_kickoff_is_its_own_root_with_its_own_session(bridged: Spans) -> None:
    research_crew(name="bare-crew").kickoff(inputs={"topic": "a"})
    bridged.provider.force_flush()
    assert ended_sessions("invoke_workflow bare-crew", 1) == {"invoke_workflow bare-crew.session": ["Success"]}


def test_a_session_opened_before_the_unclosed_root_processor_sees_its_root_is_journaled_with_it(
    agentops_sdk: Any, tmp_path: Path
) -> None:
    """With the session processor added first, a bare kickoff's session opens before the unclosed-root
    processor has seen the root: the session still goes into the root's journal row."""
    spans = Spans(AgentOpsSessionProcessor())
    spans.provider.add_span_processor(UnclosedRootProcessor(journal=journal_at(str(tmp_path))))
    tracer = spans.provider.get_tracer("test")
    kickoff = tracer.start_span("invoke_workflow early", attributes={GEN_AI_OPERATION_NAME: OPERATION_INVOKE_WORKFLOW})
    try:
        spans.provider.force_flush()
        (row,) = rows(tmp_path)
        assert json.loads(row["session"])["name"] == "invoke_workflow early.session"
    finally:
        kickoff.end()
        spans.provider.shutdown()
    assert ended_sessions("invoke_workflow early", 1) == {"invoke_workflow early.session": ["Indeterminate"]}
    assert rows(tmp_path) == []


def test_opening_a_session_changes_nothing_the_user_sees(bridged: Spans) -> None:
    with workflow("hygiene", attributes={"team": "data"}, tracer_provider=bridged.provider) as root:
        result = research_crew().kickoff(inputs={"topic": "a"})
        assert trace.get_current_span() is root
    assert result.raw.startswith("report")
    ours = {span.context.span_id for span in bridged.finished()}
    for span in bridged.finished():
        assert span.parent is None or span.parent.span_id in ours, span.name
    assert trace.get_current_span() is trace.INVALID_SPAN
    bridged.provider.force_flush()
    (session,) = [s for s in AGENTOPS.sessions() if s.name == "hygiene.session"]
    assert session.trace_id == f"{root.get_span_context().trace_id:032x}"
    assert session.parent_span_id == f"{root.get_span_context().span_id:016x}"
    assert session.authorization == f"Bearer {TOKEN}"
    assert session.attributes["agentops.tags"] == ["otel-crew", "hygiene", "team:data"]


def test_end_state_mapping_and_reason_can_be_overridden(spans: Spans, agentops_sdk: Any) -> None:
    bridge = AgentOpsSessionProcessor(end_states={StatusCode.ERROR: "Error"}, end_reason=lambda root: "custom reason")
    spans.provider.add_span_processor(bridge)
    with pytest.raises(KeyError), workflow("mapped", tracer_provider=spans.provider), kickoff_span(spans):
        raise KeyError("x")
    spans.provider.force_flush()
    assert ended_sessions("mapped", 1) == {"mapped.session": ["Error"]}
    (session,) = [s for s in AGENTOPS.sessions() if s.name == "mapped.session"]
    assert session.attributes["agentops.session.end_state_reason"] == "custom reason"


def test_agentops_raising_reaches_nobody_and_is_said_once(
    bridged: Spans, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_end_trace(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("agentops exploded")

    monkeypatch.setattr(bridge_of(bridged)._agentops, "end_trace", broken_end_trace)  # fault injection
    results = []
    with caplog.at_level(logging.WARNING, logger="otel_crew"):
        for number in range(3):
            with workflow(f"faulty-{number}", tracer_provider=bridged.provider):
                results.append(research_crew().kickoff(inputs={"topic": "a"}).raw)
        bridged.provider.force_flush()
    assert all(result.startswith("report") for result in results)
    said = [r.getMessage() for r in caplog.records if "raised while ending" in r.getMessage()]
    assert len(said) == 1 and "agentops exploded" in said[0]


@pytest.mark.parametrize(
    ("options", "error", "named"),
    [
        ({"auto_end_session": "yes"}, TypeError, "auto_end_session"),
        ({"end_states": {"OK": "Success"}}, TypeError, "end_states"),
        ({"end_states": {StatusCode.OK: ""}}, TypeError, r"end_states\[OK\]"),
        ({"end_reason": "text"}, TypeError, "end_reason"),
        ({"flush_timeout": 0}, ValueError, "flush_timeout"),
        ({"flush_timeout": "2s"}, ValueError, "flush_timeout"),
    ],
)
def test_bad_configuration_is_refused_naming_the_option(options: dict[str, Any], error: type, named: str) -> None:
    with pytest.raises(error, match=named):
        AgentOpsSessionProcessor(**options)


def test_instrument_refuses_an_unknown_agentops_mode() -> None:
    with pytest.raises(ValueError, match=r"instrument\(agentops=\.\.\.\)"):
        OtelCrewInstrumentor().instrument(agentops="sometimes")


def suppressed_calls(reader: InMemoryMetricReader) -> int:
    data = reader.get_metrics_data()
    return sum(
        int(point.value)
        for resource in (data.resource_metrics if data else [])
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "otel_crew.agentops.auto_end_suppressed"
        for point in metric.data.data_points
    )


@pytest.mark.skipif(not CREWAI_ENDS_SESSIONS, reason="CrewAI 0.95 to 0.164 end AgentOps sessions themselves")
@pytest.mark.parametrize("shape", ["workflow", "bare kickoffs, auto_end_session=False"])
def test_crewais_automatic_end_is_suppressed_and_counted_but_the_users_own_end_works(
    shape: str, spans: Spans, agentops_sdk: Any
) -> None:
    reader = InMemoryMetricReader()
    with sdk_enabled():
        meters = MeterProvider(metric_readers=[reader])
    instrumentor = OtelCrewInstrumentor()
    instrumentor.instrument(tracer_provider=spans.provider, meter_provider=meters, auto_end_session=False)
    tag = f"mine-{shape.split()[0]}"
    try:
        users_session = agentops_sdk.start_session(tags=[tag])  # the legacy "current" session CrewAI 0.102 ends
        with workflow("guarded", tracer_provider=spans.provider) if shape == "workflow" else nullcontext():
            research_crew().kickoff(inputs={"topic": "a"})
            research_crew(name="writing").kickoff(inputs={"topic": "b"})
            spans.provider.force_flush()
            assert [s for s in AGENTOPS.delivered() if tag in s.attributes.get("agentops.tags", [])] == []
            agentops_sdk.end_session("Success")  # the user's own call goes through, root or not
        assert users_session is not None
    finally:
        instrumentor.uninstrument()
    mine = [s for s in ended_by_tag(tag)]
    assert [s.attributes["agentops.session.end_state"] for s in mine] == ["Success"]
    assert suppressed_calls(reader) >= 2  # one per crew: init (0.105+) or end_session (0.102)


def ended_by_tag(tag: str) -> list[Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [s for s in AGENTOPS.sessions() if tag in s.attributes.get("agentops.tags", [])]
        if found:
            return [s for s in AGENTOPS.delivered() if tag in s.attributes.get("agentops.tags", [])]
        time.sleep(0.05)
    return []


def test_auto_end_session_false_opens_no_session_for_a_bare_kickoff(spans: Spans, agentops_sdk: Any) -> None:
    instrumentor = OtelCrewInstrumentor()
    instrumentor.instrument(tracer_provider=spans.provider, agentops="on", auto_end_session=False)
    try:
        research_crew(name="left-to-the-user").kickoff(inputs={"topic": "a"})
        spans.provider.force_flush()
    finally:
        instrumentor.uninstrument()
    assert [s for s in AGENTOPS.delivered() if "left-to-the-user" in s.name] == []


def test_export_repair_steps_in_only_where_agentops_export_is_broken(bridged: Spans) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from otel_crew.agentops_sessions import export_repair as agentops_export

    with workflow("delivered", tracer_provider=bridged.provider), kickoff_span(bridged):
        pass
    bridged.provider.force_flush()
    assert ended_sessions("delivered", 1) == {"delivered.session": ["Success"]}
    probe = OTLPSpanExporter(endpoint=f"{AGENTOPS.url}/v1/traces")
    broken = not (hasattr(probe, "_headers") and hasattr(probe, "_session"))
    assert agentops_export.repair_announced() == broken


@pytest.mark.scenario
@pytest.mark.parametrize("case", ["missing", "uninitialised", "unreachable"])
def test_agentops_faults_never_reach_the_pipeline(case: str) -> None:
    report = run_scenario("fault_scenario.py", case)[-1]
    assert report["results"] == ["report", "report"]
    assert len(report["our_warnings"]) <= 1, report["our_warnings"]
    if case == "missing":
        assert report["our_warnings"] == ["AgentOps is not installed; AgentOpsSessionProcessor records no sessions"]


def test_force_flush_mid_pipeline_keeps_the_root_and_its_session_open(bridged: Spans) -> None:
    with workflow("flushed-midway", tracer_provider=bridged.provider) as root:
        research_crew().kickoff(inputs={"topic": "a"})
        assert bridged.provider.force_flush()  # waits for every session end submitted so far
        assert root.is_recording()
        assert [s for s in AGENTOPS.delivered() if s.name == "flushed-midway.session"] == []
        assert bridge_of(bridged).open_roots == 1
        research_crew(name="writing").kickoff(inputs={"topic": "b"})
    assert bridged.provider.force_flush()
    assert ended_sessions("flushed-midway", 1) == {"flushed-midway.session": ["Success"]}
    (exported,) = bridged.named("flushed-midway")
    assert exported.status.status_code is StatusCode.OK
    assert bridge_of(bridged).open_roots == 0


EXIT_BOUND_SECONDS = 2.0
"""The README's promise: a dead AgentOps delays the exit by at most this much."""
EXIT_MARGIN_SECONDS = 2.0
"""For a loaded CI machine: both runs are measured here, and only their difference counts."""


@pytest.fixture(params=sorted(SERVERS))
def faulty_agentops(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    server = SERVERS[request.param]().start()
    try:
        yield request.param, server.url
    finally:
        server.stop()


def exit_seconds(url: str, bridge: str) -> tuple[float, dict[str, Any]]:
    """Seconds from the pipelines' end to the process' end, and the scenario's report."""
    result = run_script("exit_scenario.py", url, bridge)
    ended_at = time.time()
    assert result.returncode == 0, result.stderr[-3000:]
    (report,) = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return ended_at - report["pipelines_done_at"], report


@pytest.mark.scenario
def test_a_faulty_agentops_delays_the_exit_by_at_most_the_bound_and_says_so_once(
    faulty_agentops: tuple[str, str],
) -> None:
    kind, url = faulty_agentops
    off_seconds, off = exit_seconds(url, "off")
    on_seconds, on = exit_seconds(url, "on")
    # for the record (pytest -s): the numbers the report quotes
    print(f"{kind}: exit {off_seconds:.2f}s with the bridge off, {on_seconds:.2f}s on; said: {on['our_warnings']}")
    assert on["results"] == off["results"] == ["report"] * 3
    assert off["our_warnings"] == []
    assert on_seconds - off_seconds < EXIT_BOUND_SECONDS + EXIT_MARGIN_SECONDS, (kind, on_seconds, off_seconds)
    if kind == "slow":  # late, but within the bound: delivered, nothing to say
        assert len(on["our_warnings"]) <= 1, on["our_warnings"]
    else:
        (line,) = on["our_warnings"]
        assert "not delivered" in line and "'pipeline-0'" in line and "'pipeline-1'" in line, line
