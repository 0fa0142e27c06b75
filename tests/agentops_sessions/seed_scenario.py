"""The seed scenario, run in a fresh process per case (AgentOps is a process singleton).

Two crews in a row, with the real AgentOps SDK talking to a loopback stand-in:

- ``baseline``: AgentOps as its docs show it (``agentops.init()``), no otel-crew
  (only its export repair, without which nothing arrives on OpenTelemetry 1.45);
- ``otel-crew``: the two crews under ``workflow("nightly-report")``;
- ``otel-crew-failing``: the same, the second crew failing.

Prints one JSON line per checkpoint: the ended sessions AgentOps sent so far.
"""

from __future__ import annotations

import json
import os
import sys

from agentops_server import AgentOpsStandIn

END_STATE = "agentops.session.end_state"


def main(case: str) -> None:
    server = AgentOpsStandIn().start()
    os.environ["AGENTOPS_API_ENDPOINT"] = server.url
    os.environ["AGENTOPS_EXPORTER_ENDPOINT"] = f"{server.url}/v1/traces"
    sdk_switch = os.environ.pop("OTEL_SDK_DISABLED", None)  # CrewAI 0.102's telemetry switch; see conftest

    import agentops
    from opentelemetry.sdk.trace import TracerProvider

    from otel_crew.agentops_sessions.export_repair import repair_agentops_export
    from otel_crew.cli.demo_crews import failing_crew, research_crew

    def checkpoint(label: str, expected: int) -> None:
        sessions = server.wait_for_sessions(expected, timeout=10)
        ended = [[span.name, span.attributes.get(END_STATE), span.trace_id] for span in server.delivered()]
        print(json.dumps({"at": label, "sessions": ended, "expected_at_least": len(sessions)}), flush=True)

    if case == "baseline":
        repair_agentops_export()
        agentops.init()
        if sdk_switch:
            os.environ["OTEL_SDK_DISABLED"] = sdk_switch
        research_crew().kickoff(inputs={"topic": "a"})
        checkpoint("after first crew", 1)
        research_crew(name="writing").kickoff(inputs={"topic": "b"})
        checkpoint("after second crew", 1)
        return

    from otel_crew import OtelCrewInstrumentor, workflow

    agentops.init(auto_start_session=False)
    provider = TracerProvider()
    if sdk_switch:
        os.environ["OTEL_SDK_DISABLED"] = sdk_switch
    OtelCrewInstrumentor().instrument(tracer_provider=provider)
    second = failing_crew(name="writing") if case == "otel-crew-failing" else research_crew(name="writing")
    try:
        with workflow("nightly-report") as root:
            print(json.dumps({"root_trace_id": f"{root.get_span_context().trace_id:032x}"}), flush=True)
            research_crew().kickoff(inputs={"topic": "a"})
            checkpoint("after first crew", 0)
            second.kickoff(inputs={"topic": "b"})
    except Exception as error:
        print(json.dumps({"raised": type(error).__name__}), flush=True)
    provider.force_flush()
    checkpoint("after root", 1)


if __name__ == "__main__":
    main(sys.argv[1])
