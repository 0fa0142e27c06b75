"""How long a process takes to exit with AgentOps at a given endpoint, bridge on or off.

``exit_scenario.py URL on|off``: AgentOps initialised at ``URL``, two one-crew
pipelines under roots, then ``provider.shutdown()`` and a normal exit (AgentOps'
own exit handlers run too). From the last exit handler it prints one JSON line:
what the pipelines returned, otel-crew's own warnings (the exit's included),
and the wall-clock time the pipelines finished at: the test reads the exit's
length from it and the moment the process ended.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import time


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def main(url: str, bridge: str) -> None:
    os.environ["AGENTOPS_API_ENDPOINT"] = url
    os.environ["AGENTOPS_EXPORTER_ENDPOINT"] = f"{url}/v1/traces"
    # AgentOps sends its own metrics to its public host (hard-wired), which an offline machine
    # cannot reach: the bridge keeps that export within the exit bound too.
    sdk_switch = os.environ.pop("OTEL_SDK_DISABLED", None)  # CrewAI 0.102's telemetry switch; see conftest
    collected = Collect()
    logging.getLogger("otel_crew").addHandler(collected)
    report: dict[str, object] = {"results": [], "our_warnings": collected.messages}
    # Registered first, so it runs last: after AgentOps' own exit handlers.
    atexit.register(lambda: print(json.dumps(report), flush=True))

    import agentops
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    agentops.init(auto_start_session=False, instrument_llm_calls=False)
    provider = TracerProvider()
    if sdk_switch:
        os.environ["OTEL_SDK_DISABLED"] = sdk_switch

    from otel_crew import OtelCrewInstrumentor, workflow
    from otel_crew.cli.demo_crews import research_crew

    # The user's own meter provider: otel-crew's metrics go there, not to AgentOps' global one.
    OtelCrewInstrumentor().instrument(tracer_provider=provider, meter_provider=MeterProvider(), agentops=bridge)
    results = [research_crew().kickoff(inputs={"topic": "warm-up"}).raw.split(" ")[0]]  # imports done before timing
    for number in range(2):
        with workflow(f"pipeline-{number}"):
            results.append(research_crew().kickoff(inputs={"topic": "a"}).raw.split(" ")[0])
    report["results"] = results
    report["pipelines_done_at"] = time.time()
    provider.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
