"""What AgentOps and the user's backend each receive for one pipeline, for an order of set-up steps.

``tree_scenario.py STEPS [WORKLOADS]``: STEPS is a comma-separated order of
``init`` (``agentops.init()``, its import hook on), ``crewai`` (``import
crewai``) and ``instrument`` (otel-crew's bridge on). Then, one after the
other, each root of WORKLOADS (comma-separated) runs with two crews: the
local model's (``local``, the default), or the five-call pipeline on the
loopback LLM server (``llm``), with ``+stream`` and ``+genai`` (the GenAI
OpenAI instrumentation on the user's provider, for that root only) to add.
Then otel-crew is uninstrumented, and one JSON line per workload says what the
user's exporter got while it ran, what the loopback AgentOps received, and
what AgentOps' CrewAI instrumentation looked like while bridged and after.
The set-up order is what needs the fresh process; the roots after it are a
pipeline's roots, each with its own session.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from agentops_server import AgentOpsStandIn


def crewai_instrumentation_state() -> dict[str, Any]:
    """AgentOps' registry entry for CrewAI and its active CrewAI instrumentor."""
    import agentops.instrumentation as registry

    active = [
        type(instrumentor).__name__
        for instrumentor in registry._active_instrumentors
        if getattr(instrumentor, "_agentops_instrumented_package_key", None) == "crewai"
    ]
    instrumented = [
        bool(getattr(instrumentor, "_is_instrumented_by_opentelemetry", False))
        for instrumentor in registry._active_instrumentors
        if getattr(instrumentor, "_agentops_instrumented_package_key", None) == "crewai"
    ]
    kickoff = None
    if "crewai" in sys.modules:
        method = vars(sys.modules["crewai"].Crew)["kickoff"]
        kickoff = f"{type(method).__name__} {id(method)}"
    return {
        "entry": registry.AGENTIC_LIBRARIES["crewai"]["class_name"],
        "active": active,
        "instrumented": instrumented,
        "kickoff": kickoff,
    }


def received(stand_in: AgentOpsStandIn) -> list[dict[str, Any]]:
    return [
        {
            "name": span.name,
            "trace_id": span.trace_id,
            "span_id": span.span_id,
            "parent": span.parent_span_id,
            "attributes": {k: v for k, v in span.attributes.items() if k.startswith(("gen_ai.", "agentops.span"))},
        }
        for span in stand_in.snapshot()
    ]


def run_pipeline(workload: str, provider: Any) -> Any:
    """Runs the workload under one root; returns the root span."""
    from otel_crew import workflow

    if workload == "local":
        from otel_crew.cli.demo_crews import research_crew

        crews = (research_crew(name="research"), research_crew(name="writing"))
        with workflow("two-crews") as root:
            crews[0].kickoff(inputs={"topic": "a"})
            crews[1].kickoff(inputs={"topic": "b"})
        return root
    from llm_pipeline import two_crews
    from llm_server import LLMServer

    server = LLMServer().start()
    genai = None
    if "+genai" in workload:
        from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor

        genai = OpenAIInstrumentor()
        genai.instrument(tracer_provider=provider)
    try:
        research, publish = two_crews(server, stream="+stream" in workload)
        with workflow("two-crews") as root:
            research.kickoff()
            publish.kickoff()
    finally:
        if genai is not None:
            genai.uninstrument()
        server.stop()
    return root


def finished(exporter: Any) -> list[dict[str, Any]]:
    """The spans the user's exporter got since the last call."""
    spans = [
        {
            "name": span.name,
            "span_id": f"{span.context.span_id:016x}",
            "parent": "" if span.parent is None else f"{span.parent.span_id:016x}",
            "usage": {k: v for k, v in (span.attributes or {}).items() if k.startswith("gen_ai.usage.")},
        }
        for span in exporter.get_finished_spans()
    ]
    exporter.clear()
    return spans


def main(steps: list[str], workloads: list[str]) -> None:
    sdk_switch = os.environ.pop("OTEL_SDK_DISABLED", None)  # CrewAI 0.102's telemetry switch; see conftest
    stand_in = AgentOpsStandIn()
    stand_in.start()
    os.environ["AGENTOPS_API_ENDPOINT"] = stand_in.url
    os.environ["AGENTOPS_EXPORTER_ENDPOINT"] = f"{stand_in.url}/v1/traces"
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    from otel_crew import OtelCrewInstrumentor

    instrumentor = OtelCrewInstrumentor()
    for step in steps:
        if step == "init":
            import agentops

            agentops.init(auto_start_session=False)
        elif step == "crewai":
            import crewai  # noqa: F401
        elif step == "instrument":
            before = crewai_instrumentation_state()
            instrumentor.instrument(tracer_provider=provider, agentops="on")
    if sdk_switch:  # the providers that must record are built: CrewAI's telemetry stays off
        os.environ["OTEL_SDK_DISABLED"] = sdk_switch
    bridged = crewai_instrumentation_state()
    runs = []
    for workload in workloads:
        root = run_pipeline(workload, provider)
        runs.append((workload, root.get_span_context(), finished(exporter)))
    instrumentor.uninstrument()
    provider.shutdown()
    from agentops.sdk.core import tracer

    tracer.provider.force_flush()
    after = crewai_instrumentation_state()
    for workload, root, user in runs:
        report = {
            "workload": workload,
            "root_trace_id": f"{root.trace_id:032x}",
            "root_span_id": f"{root.span_id:016x}",
            "user": user,
            "agentops": received(stand_in),
            "before": before,
            "bridged": bridged,
            "after": after,
        }
        # The process' own stdout: CrewAI 0.130 filters sys.stdout (it drops any line containing "litellm").
        sys.__stdout__.write("\n" + json.dumps(report) + "\n")  # streamed replies may leave a line open
    sys.__stdout__.flush()
    stand_in.stop()


if __name__ == "__main__":
    main(sys.argv[1].split(","), (sys.argv[2] if len(sys.argv) > 2 else "local").split(","))
