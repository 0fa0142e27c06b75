"""pytest plugin (``-p suite_instrumented``): CrewAI's suite with otel-crew instrumenting it.

It owns the instrumented run's tracing: at session start, in each process
that runs tests, an SDK ``TracerProvider`` of its own, spans kept in memory
and counted, and ``OtelCrewInstrumentor().instrument(tracer_provider=...)``.
The global tracer provider is never set, as a user's own provider would not
be. The count of spans recorded goes to the file named by
``OTEL_CREW_SUITE_SPANS``: run.py checks the run was traced at all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_crew import OtelCrewInstrumentor

_SPANS_KEY = "otel_crew_spans"


class _Tracing:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.instrumentor = OtelCrewInstrumentor()
        self.spans = 0

    def count(self) -> None:
        """Count what the test made and drop it: memory stays flat over thousands of tests."""
        self.spans += len(self.exporter.get_finished_spans())
        self.exporter.clear()


_TRACING = _Tracing()


def pytest_sessionstart(session: pytest.Session) -> None:
    _TRACING.instrumentor.instrument(tracer_provider=_TRACING.provider)


def pytest_runtest_logfinish(nodeid: str, location: Any) -> None:
    _TRACING.count()


def pytest_sessionfinish(session: pytest.Session) -> None:
    _TRACING.instrumentor.uninstrument()
    _TRACING.count()
    _TRACING.provider.shutdown()
    config = session.config
    if hasattr(config, "workerinput"):  # an xdist worker: its count goes to the controller
        config.workeroutput[_SPANS_KEY] = _TRACING.spans  # type: ignore[attr-defined]
        return
    out = os.environ.get("OTEL_CREW_SUITE_SPANS")
    if out:
        Path(out).write_text(f"{_TRACING.spans}\n")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """The controller adds up its workers' counts."""
    _TRACING.spans += int(getattr(node, "workeroutput", {}).get(_SPANS_KEY, 0))
