"""otel-crew with no CrewAI installed (nox's ``tests(crewai='none')`` environment)."""

from __future__ import annotations

import logging

import pytest
from conftest import CREWAI, Spans

from otel_crew import OtelCrewInstrumentor, UnclosedRootProcessor, workflow
from otel_crew.cli.exit_codes import EXIT_MISSING
from otel_crew.cli.main import main

pytestmark = pytest.mark.skipif(CREWAI is not None, reason="runs in the environment without CrewAI")


def test_instrument_says_in_one_line_that_crewai_is_missing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        OtelCrewInstrumentor().instrument()
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1 and '"crewai >= 0.102.0, < 2"' in messages[0], messages
    assert not OtelCrewInstrumentor().is_instrumented_by_opentelemetry


def test_roots_and_processors_need_no_crewai() -> None:
    processor = UnclosedRootProcessor()
    spans = Spans(first_processor=processor)
    with workflow("no-crew", tracer_provider=spans.provider):
        spans.provider.get_tracer("t").start_span("step").end()
    assert spans.names() == ["no-crew", "step"]
    assert processor.open_roots == 0
    spans.provider.shutdown()


def test_the_demo_says_what_is_missing() -> None:
    assert main(["demo"]) == EXIT_MISSING
