"""Pause a flow in a fresh process, so that a test can resume it from the
persisted state only. Prints one JSON line: the flow's id and the paused run's
span context."""

from __future__ import annotations

import json

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_crew import OtelCrewInstrumentor


def main() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    OtelCrewInstrumentor().instrument(tracer_provider=provider, agentops="off")
    from flow_pauses import Review

    flow = Review()
    flow.kickoff()
    (run,) = [span for span in exporter.get_finished_spans() if span.name == "invoke_workflow Review"]
    context = run.get_span_context()
    paused = {"flow_id": flow.flow_id, "trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}
    print(json.dumps(paused))


if __name__ == "__main__":
    main()
