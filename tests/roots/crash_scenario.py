"""The two sides of a crash, each in a fresh process (``OTEL_CREW_STATE_DIR`` from the test).

``open URL AGENTOPS``: instrument a provider exporting OTLP/HTTP to ``URL``,
open ``workflow("doomed")``, run a crew inside it, flush the exporter, print the root's ids as one JSON line, and wait
on stdin: the test kills it there (or closes stdin: the root then ends
normally and the process exits).

``recover URL AGENTOPS``: print ``{"ready": true}``, wait for one line on
stdin (so that several recoverers start together), then instrument a provider
exporting to ``URL``: that is the recovery. Prints what it recovered and the
recovered roots' times, and exits (the exporters flush at exit; AgentOps'
is flushed once it has its token).

``AGENTOPS`` is ``on`` (AgentOps initialised, against the test's stand-in)
or ``off``.
"""

from __future__ import annotations

import json
import os
import sys

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult


class Kept(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: object) -> SpanExportResult:
        self.spans.extend(spans)  # type: ignore[call-overload]
        return SpanExportResult.SUCCESS


def provider_with_agentops(with_agentops: bool) -> TracerProvider:
    sdk_switch = os.environ.pop("OTEL_SDK_DISABLED", None)  # CrewAI 0.102's telemetry switch; see conftest
    if with_agentops:
        import agentops

        agentops.init(auto_start_session=False, instrument_llm_calls=False)
    provider = TracerProvider()
    if sdk_switch:
        os.environ["OTEL_SDK_DISABLED"] = sdk_switch
    return provider


def open_and_wait(url: str, with_agentops: bool) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from otel_crew import OtelCrewInstrumentor, workflow

    provider = provider_with_agentops(with_agentops)
    batch = BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces"))
    provider.add_span_processor(batch)
    OtelCrewInstrumentor().instrument(tracer_provider=provider, agentops="on" if with_agentops else "off")
    with workflow("doomed", attributes={"pipeline.kind": "nightly"}, tracer_provider=provider) as root:
        from otel_crew.cli.demo_crews import research_crew

        research_crew().kickoff(inputs={"topic": "crashes"})
        batch.force_flush()  # the children are out; the root is still open
        context = root.get_span_context()
        print(json.dumps({"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}), flush=True)
        sys.stdin.read()  # killed here
    provider.shutdown()


def recover(url: str, with_agentops: bool) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from otel_crew import OtelCrewInstrumentor

    provider = provider_with_agentops(with_agentops)
    kept = Kept()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
    provider.add_span_processor(SimpleSpanProcessor(kept))
    import crewai  # noqa: F401 - imported before "ready", so that recoverers instrument together

    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()
    OtelCrewInstrumentor().instrument(tracer_provider=provider, agentops="on" if with_agentops else "off")
    roots = [
        {
            "span_id": f"{span.context.span_id:016x}",
            "start": span.start_time,
            "end": span.end_time,
            "description": span.status.description,
        }
        for span in kept.spans
        if span.context is not None
    ]
    if with_agentops:  # a short-lived process: send the session once AgentOps has its token
        from otel_crew.agentops_sessions.recovery import flush_agentops

        flush_agentops(10.0)
    print(json.dumps({"recovered": roots}), flush=True)
    provider.shutdown()


if __name__ == "__main__":
    mode, url, agentops_mode = sys.argv[1:4]
    (open_and_wait if mode == "open" else recover)(url, agentops_mode == "on")
