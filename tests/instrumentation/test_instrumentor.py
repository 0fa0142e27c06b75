"""OtelCrewInstrumentor as an OpenTelemetry instrumentor: install, remove, options."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points, version

import pytest
from conftest import CREWAI, Spans, instrumenting
from crewai import Agent, Crew, Task
from crewai.tools import BaseTool
from crewai.tools.structured_tool import CrewStructuredTool
from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.instrumentation.utils import suppress_instrumentation

from otel_crew import OtelCrewInstrumentor, workflow
from otel_crew.cli.demo_crews import research_crew
from otel_crew.instrumentation import instrumentor

pytestmark = pytest.mark.crewai

OBSERVED = [
    (Crew, "kickoff"),
    (Crew, "kickoff_for_each"),
    (Crew, "kickoff_async"),
    (Agent, "execute_task"),
    (BaseTool, "run"),
    (CrewStructuredTool, "invoke"),
]
# The context carry-over rows, only where CrewAI does not carry the context itself.
CARRY_OVER = [
    (Agent, "_execute_with_timeout"),
    (Agent, "_execute_without_timeout"),
    (Task, "execute_async"),
    (Task, "_execute_task_async"),
]
CARRIES = CREWAI is not None and CREWAI < (1, 11)  # instrumentor.CARRY_OVER_BEFORE
if CARRIES:
    OBSERVED.append((Task, "execute_async"))


def test_uninstrument_puts_back_every_original_exactly(spans: Spans) -> None:
    before = {(owner, name): vars(owner)[name] for owner, name in OBSERVED}
    everything_before = {owner: dict(vars(owner)) for owner, _ in OBSERVED}
    instrumentor_ = OtelCrewInstrumentor()
    instrumentor_.instrument(tracer_provider=spans.provider)
    assert all(vars(owner)[name] is not before[(owner, name)] for owner, name in OBSERVED)
    instrumentor_.uninstrument()
    assert all(vars(owner)[name] is before[(owner, name)] for owner, name in OBSERVED)
    for owner, members in everything_before.items():
        assert set(vars(owner)) == set(members), owner
    research_crew().kickoff(inputs={"topic": "x"})
    assert spans.finished() == []


def test_second_instrument_into_the_same_provider_is_harmless(
    instrumented: Spans, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        OtelCrewInstrumentor().instrument(tracer_provider=instrumented.provider)
    assert caplog.records == []
    research_crew().kickoff(inputs={"topic": "x"})
    assert len(instrumented.named("invoke_workflow research")) == 1
    assert len(instrumented.named("execute_tool word_count")) == 1


def test_second_instrument_into_another_provider_refuses_in_one_line_saying_how(
    instrumented: Spans, caplog: pytest.LogCaptureFixture
) -> None:
    other = Spans()
    with caplog.at_level(logging.WARNING):
        OtelCrewInstrumentor().instrument(tracer_provider=other.provider)
    assert [record.getMessage() for record in caplog.records] == [
        "otel-crew: instrument(): CrewAI is already instrumented into another tracer provider and its spans keep "
        "going there; call OtelCrewInstrumentor().uninstrument() first to switch to this one"
    ]
    research_crew().kickoff(inputs={"topic": "x"})
    assert len(instrumented.named("invoke_workflow research")) == 1  # not dropped: where they went before
    assert other.finished() == []


def test_suppressed_instrumentation_makes_no_spans(instrumented: Spans) -> None:
    with suppress_instrumentation():
        result = research_crew().kickoff(inputs={"topic": "x"})
    assert result.raw.startswith("report")
    assert instrumented.finished() == []


def test_never_sets_the_global_tracer_provider(instrumented: Spans) -> None:
    research_crew().kickoff(inputs={"topic": "x"})
    assert trace.get_tracer_provider() is not instrumented.provider
    assert instrumented.named("invoke_workflow research")


def test_unknown_option_is_warned_about_with_the_closest_known_one(
    spans: Spans, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), instrumenting(spans, capture_contnet=False, shiny=1):
        research_crew().kickoff(inputs={"topic": "x"})
    warnings = [record.getMessage() for record in caplog.records if "unknown option" in record.getMessage()]
    assert warnings == [
        "otel-crew: instrument() ignores the unknown option 'capture_contnet' (did you mean 'capture_content'?)",
        "otel-crew: instrument() ignores the unknown option 'shiny'; known options: "
        + ", ".join(sorted(instrumentor._OUR_OPTIONS)),
    ]
    assert len(spans.named("invoke_workflow research")) == 1


def test_a_known_option_of_the_wrong_type_is_refused_at_the_call() -> None:
    with pytest.raises(TypeError, match="capture_content"):
        OtelCrewInstrumentor().instrument(capture_content="yes")
    with pytest.raises(ValueError, match="agentops"):
        OtelCrewInstrumentor().instrument(agentops="sometimes")
    assert not OtelCrewInstrumentor().is_instrumented_by_opentelemetry


def unwrappable(cls: type, method: str) -> type:
    """A subclass of ``cls`` defining ``method`` whose class refuses to have it replaced."""

    class Refusing(type(cls)):  # type: ignore[misc]
        def __setattr__(self, name: str, value: object) -> None:
            if name == method:
                raise AttributeError(f"{method} is read-only here")
            super().__setattr__(name, value)

    return Refusing(cls.__name__, (cls,), {method: vars(cls)[method], "__module__": cls.__module__})


def test_a_patch_that_fails_undoes_everything_and_crewai_runs_untouched(
    spans: Spans, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from crewai.tools import structured_tool

    # The table's last row cannot be applied: every row before it was, and must be undone.
    refusing = unwrappable(CrewStructuredTool, "ainvoke")
    monkeypatch.setattr(structured_tool, "CrewStructuredTool", refusing)
    classes = [owner for owner, _ in OBSERVED] + [W3CBaggagePropagator]
    everything_before = {owner: dict(vars(owner)) for owner in classes}
    processors_before = spans.provider._active_span_processor._span_processors
    with caplog.at_level(logging.WARNING):
        assert OtelCrewInstrumentor().instrument(tracer_provider=spans.provider) is None
    warnings = [record.getMessage() for record in caplog.records if record.name == instrumentor.__name__]
    assert warnings == [
        "otel-crew: instrument() failed wrapping CrewStructuredTool.ainvoke (AttributeError: ainvoke is read-only "
        "here); everything it had done is undone and CrewAI runs untraced"
    ]
    assert not OtelCrewInstrumentor().is_instrumented_by_opentelemetry
    for owner, members in everything_before.items():
        assert dict(vars(owner)) == members, owner
    assert spans.provider._active_span_processor._span_processors == processors_before
    result = research_crew().kickoff(inputs={"topic": "x"})
    with workflow("untraced"):
        pass
    assert result.raw.startswith("report")
    assert spans.finished() == []
    # Nothing is left half-done: the next instrument() starts clean and works.
    monkeypatch.undo()
    with instrumenting(spans):
        research_crew().kickoff(inputs={"topic": "x"})
    assert len(spans.named("invoke_workflow research")) == 1


def missing_method_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(record.levelno, record.getMessage()) for record in caplog.records if " has no " in record.getMessage()]


def test_a_method_the_installed_crewai_lacks_is_named_in_one_warning(
    spans: Spans, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delattr(Crew, "kickoff_for_each")
    monkeypatch.delattr(Crew, "kickoff_for_each_async")
    with caplog.at_level(logging.INFO), instrumenting(spans):
        research_crew().kickoff(inputs={"topic": "x"})
    warnings = [message for level, message in missing_method_lines(caplog) if level == logging.WARNING]
    assert warnings == [
        f"otel-crew: CrewAI {version('crewai')} has no Crew.kickoff_for_each, Crew.kickoff_for_each_async, which "
        "otel-crew wraps; calls through them will not be traced"
    ]
    assert len(spans.named("invoke_workflow research")) == 1


@pytest.mark.skipif(CREWAI is None or CARRIES, reason="CrewAI before 1.11 starts its threads without the context")
def test_where_crewai_carries_the_context_its_thread_methods_stay_its_own(spans: Spans) -> None:
    before = {(owner, name): vars(owner)[name] for owner, name in CARRY_OVER}
    with instrumenting(spans):
        assert {(owner, name): vars(owner)[name] for owner, name in CARRY_OVER} == before  # CrewAI's own source


@pytest.mark.skipif(CREWAI is None or CREWAI < (1,), reason="every row of the table exists on CrewAI 1.x")
def test_on_the_latest_crewai_every_method_of_the_table_exists(spans: Spans, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO), instrumenting(spans):
        pass
    assert missing_method_lines(caplog) == []


@pytest.mark.skipif(CREWAI is None or CREWAI >= (1,), reason="the 0.x lines lack the 1.x async methods")
def test_methods_older_crewai_lines_lack_by_design_are_said_once_at_info(
    spans: Spans, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO), instrumenting(spans):
        research_crew().kickoff(inputs={"topic": "x"})
    ((level, message),) = missing_method_lines(caplog)
    assert level == logging.INFO
    assert message.startswith(f"otel-crew: CrewAI {version('crewai')} has no Crew.akickoff, Crew.akickoff_for_each, ")
    assert "Tool.run" not in message  # inherited from BaseTool.run, which is wrapped
    assert len(spans.named("execute_tool word_count")) == 1


def test_opentelemetry_tooling_keywords_are_accepted(spans: Spans) -> None:
    instrumentor_ = OtelCrewInstrumentor()
    instrumentor_.instrument(tracer_provider=spans.provider, skip_dep_check=True, meter_provider=None)
    try:
        assert instrumentor_.is_instrumented_by_opentelemetry
    finally:
        instrumentor_.uninstrument()


def test_unsupported_crewai_is_said_in_one_clear_message(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(instrumentor, "SUPPORTED_CREWAI", "crewai >= 99")
    before = vars(Crew)["kickoff"]
    with caplog.at_level(logging.ERROR):
        OtelCrewInstrumentor().instrument()
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1
    # OpenTelemetry's own words, which changed across versions:
    # 'OtelCrewInstrumentor only instruments "crewai >= 99", but ... 0.102.0 ... nothing can be instrumented'
    # 'DependencyConflict: requested: "crewai >= 99" but found: "crewai 0.102.0"'
    assert '"crewai >= 99"' in messages[0] and version("crewai") in messages[0]
    assert not OtelCrewInstrumentor().is_instrumented_by_opentelemetry
    assert vars(Crew)["kickoff"] is before


def test_states_the_supported_crewai_range() -> None:
    assert list(OtelCrewInstrumentor().instrumentation_dependencies()) == ["crewai >= 0.102.0, < 2"]


@pytest.mark.scenario
def test_entry_point_lets_opentelemetry_instrument_find_it() -> None:
    (point,) = entry_points(group="opentelemetry_instrumentor", name="otel_crew")
    assert point.load() is OtelCrewInstrumentor
    script = textwrap.dedent(
        """
        from crewai import Crew
        stand_in = Crew.__dict__["kickoff"].__code__.co_filename.endswith("patches.py")
        print("wrapped" if stand_in else "bare")
        """
    )
    bin_dir = sys.executable.rsplit("/", 1)[0]
    # No exporters: the point is the entry point, not an export to a collector that is not there (whose
    # metric retries would hold the exit for about 7 s).
    quiet = {f"OTEL_{signal}_EXPORTER": "none" for signal in ("TRACES", "METRICS", "LOGS")}
    result = subprocess.run(
        [f"{bin_dir}/opentelemetry-instrument", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, **quiet},
    )
    assert result.stdout.strip().splitlines()[-1] == "wrapped", result.stderr[-2000:]
