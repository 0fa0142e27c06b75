"""AgentOps missing, never initialised, or unreachable, in a fresh process.

Runs two one-crew pipelines under roots with the bridge on, and prints one JSON
line: what the pipelines returned and otel-crew's own warnings. (How long a
dead AgentOps can hold the exit is exit_scenario.py's, measured against a run
with the bridge off.)
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage().removeprefix("otel-crew: "))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main(case: str) -> None:
    if case == "missing":
        sys.modules["agentops"] = None  # type: ignore[assignment]  # as if not installed
    if case == "unreachable":
        dead = f"http://127.0.0.1:{closed_port()}"
        os.environ["AGENTOPS_API_ENDPOINT"] = dead
        os.environ["AGENTOPS_EXPORTER_ENDPOINT"] = f"{dead}/v1/traces"
    sdk_switch = os.environ.pop("OTEL_SDK_DISABLED", None)
    collected = Collect()
    logging.getLogger("otel_crew").addHandler(collected)

    from opentelemetry.sdk.trace import TracerProvider

    if case == "unreachable":
        import agentops

        agentops.init(auto_start_session=False, instrument_llm_calls=False)
    provider = TracerProvider()
    if sdk_switch:
        os.environ["OTEL_SDK_DISABLED"] = sdk_switch

    from otel_crew import OtelCrewInstrumentor, workflow
    from otel_crew.cli.demo_crews import research_crew

    OtelCrewInstrumentor().instrument(tracer_provider=provider, agentops="on")
    results = []
    for number in range(2):
        with workflow(f"pipeline-{number}"):
            results.append(research_crew().kickoff(inputs={"topic": "a"}).raw.split(" ")[0])
    provider.shutdown()
    report = {
        "results": results,
        "our_warnings": [message for message in collected.messages if "still open" not in message],
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
