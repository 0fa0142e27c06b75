"""Zero-code start: ``opentelemetry-instrument python app.py`` with the
documented install (``.[auto]``: the OpenTelemetry distro) sends crew
spans to an OTLP receiver; ``instrument()`` before any SDK provider exists says
so in one line and picks the provider up once one is set."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cli_run import clean_env
from conftest import CREWAI
from otlp_receivers import GrpcReceiver

pytestmark = [pytest.mark.skipif(CREWAI is None, reason="runs real crews"), pytest.mark.scenario]

APP = """
from otel_crew import workflow
from otel_crew.cli.demo_crews import research_crew

with workflow("zero-code"):
    research_crew().kickoff(inputs={"topic": "tracing"})
    research_crew(name="writing").kickoff(inputs={"topic": "the report"})
"""

LATE_PROVIDER = """
import logging, sys
sys.modules["agentops"] = None  # CrewAI 0.105 to 0.164 would start AgentOps at each kickoff: not the subject here
logging.basicConfig(level=logging.WARNING, format="LOG %(levelname)s %(message)s", stream=sys.stdout)
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_crew import OtelCrewInstrumentor, workflow
from otel_crew.cli.demo_crews import research_crew

OtelCrewInstrumentor().instrument(agentops="off")  # nothing set yet: the API's placeholder
provider = TracerProvider()
exported = InMemorySpanExporter()
provider.add_span_processor(SimpleSpanProcessor(exported))
trace.set_tracer_provider(provider)
with workflow("late-provider"):
    research_crew().kickoff(inputs={"topic": "a"})
print("FIRST", type(provider._active_span_processor._span_processors[0]).__name__)
spans = {span.context.span_id: span for span in exported.get_finished_spans()}
for span in spans.values():
    parent = spans[span.parent.span_id].name if span.parent and span.parent.span_id in spans else "-"
    print("SPAN", span.name, "<", parent)
OtelCrewInstrumentor().uninstrument()
print("AFTER", [type(p).__name__ for p in provider._active_span_processor._span_processors])
"""


def test_opentelemetry_instrument_sends_crew_spans_with_the_distro(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP)
    server = GrpcReceiver().start()
    try:
        env = clean_env(
            OTEL_EXPORTER_OTLP_ENDPOINT=server.url,
            OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
            OTEL_SERVICE_NAME="zero-code-app",
        )
        instrument = Path(sys.executable).parent / "opentelemetry-instrument"
        result = subprocess.run(
            [str(instrument), sys.executable, str(app)], env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr[-3000:]
        received = server.wait_for(6)
    finally:
        server.stop()
    ours = [span for span in received if span.name.startswith(("zero-code", "invoke_", "execute_tool"))]
    names = {span.name for span in ours}
    assert {"zero-code", "invoke_workflow research", "invoke_workflow writing", "execute_tool word_count"} <= names
    (root,) = [span for span in ours if span.name == "zero-code"]
    assert {span.trace_id for span in ours} == {root.trace_id}
    assert root.resource["service.name"] == "zero-code-app"
    assert "no SDK tracer provider" not in result.stderr


def test_instrument_before_any_provider_says_how_and_picks_it_up_once_set() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LATE_PROVIDER], env=clean_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # CrewAI 0.102's telemetry tries to set the global provider too: its own warning is not ours.
    logged = [line for line in result.stdout.splitlines() if line.startswith("LOG ") and "otel-crew" in line]
    assert len(logged) == 1, logged
    assert logged[0].startswith("LOG WARNING otel-crew: no SDK tracer provider yet")
    assert "otel_crew.configure()" in logged[0] and "opentelemetry-instrument" in logged[0]
    assert 'pip install ".[auto]" in the otel-crew clone' in logged[0]
    assert "FIRST UnclosedRootProcessor" in result.stdout  # installed in the late provider, first in line
    spans = [line for line in result.stdout.splitlines() if line.startswith("SPAN ")]
    assert "SPAN late-provider < -" in spans
    assert "SPAN invoke_workflow research < late-provider" in spans
    assert "SPAN execute_tool word_count < invoke_agent Researcher" in spans
    assert "AFTER ['SimpleSpanProcessor']" in result.stdout  # uninstrument took it out again
