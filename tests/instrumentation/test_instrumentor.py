"""OtelCrewInstrumentor as an OpenTelemetry instrumentor: install, remove, options."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points, version

import pytest
from conftest import Spans
from crewai import Agent, Crew, Task
from crewai.tools import BaseTool
from crewai.tools.structured_tool import CrewStructuredTool
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation

from otel_crew import OtelCrewInstrumentor
from otel_crew.cli.demo_crews import research_crew
from otel_crew.instrumentation import instrumentor

pytestmark = pytest.mark.crewai

OBSERVED = [
    (Crew, "kickoff"),
    (Crew, "kickoff_for_each"),
    (Crew, "kickoff_async"),
    (Agent, "execute_task"),
    (Task, "execute_async"),
    (BaseTool, "run"),
    (CrewStructuredTool, "invoke"),
]


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


def test_second_instrument_is_harmless(instrumented: Spans, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        OtelCrewInstrumentor().instrument(tracer_provider=instrumented.provider)
    assert "already instrumented" in caplog.text
    research_crew().kickoff(inputs={"topic": "x"})
    assert len(instrumented.named("invoke_workflow research")) == 1
    assert len(instrumented.named("execute_tool word_count")) == 1


def test_suppressed_instrumentation_makes_no_spans(instrumented: Spans) -> None:
    with suppress_instrumentation():
        result = research_crew().kickoff(inputs={"topic": "x"})
    assert result.raw.startswith("report")
    assert instrumented.finished() == []


def test_never_sets_the_global_tracer_provider(instrumented: Spans) -> None:
    research_crew().kickoff(inputs={"topic": "x"})
    assert trace.get_tracer_provider() is not instrumented.provider
    assert instrumented.named("invoke_workflow research")


def test_misspelled_option_is_named() -> None:
    with pytest.raises(TypeError, match=r"unknown option\(s\) 'tracer_provder'"):
        OtelCrewInstrumentor().instrument(tracer_provder=None)
    with pytest.raises(TypeError, match="capture_content"):
        OtelCrewInstrumentor().instrument(capture_content="yes")
    assert not OtelCrewInstrumentor().is_instrumented_by_opentelemetry


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


def test_entry_point_lets_opentelemetry_instrument_find_it() -> None:
    (point,) = entry_points(group="opentelemetry_instrumentor", name="otel_crew")
    assert point.load() is OtelCrewInstrumentor
    script = textwrap.dedent(
        """
        from crewai import Crew
        stand_in = Crew.__dict__["kickoff"].__code__.co_filename.endswith("patching.py")
        print("wrapped" if stand_in else "bare")
        """
    )
    bin_dir = sys.executable.rsplit("/", 1)[0]
    result = subprocess.run(
        [f"{bin_dir}/opentelemetry-instrument", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.stdout.strip().splitlines()[-1] == "wrapped", result.stderr[-2000:]
