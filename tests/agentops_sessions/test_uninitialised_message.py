"""AgentOps installed but never initialised: with ``agentops="auto"`` (the
default) that is a normal state and gets one debug line; with ``"on"`` the
user asked for sessions and gets a warning. Run in a fresh process, where
nothing has initialised AgentOps."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.scenario

SCRIPT = """
import logging, os, sys
logging.basicConfig(level=logging.DEBUG, format="LOG %(levelname)s %(name)s %(message)s", stream=sys.stdout)
from opentelemetry.sdk.trace import TracerProvider
from otel_crew import OtelCrewInstrumentor, workflow
from otel_crew.cli.demo_crews import research_crew

sdk_switch = os.environ.pop("OTEL_SDK_DISABLED", None)  # CrewAI 0.102's telemetry switch (conftest)
provider = TracerProvider()
if sdk_switch:  # our provider records; CrewAI's telemetry stays off (else its exit waits on an unreachable host)
    os.environ["OTEL_SDK_DISABLED"] = sdk_switch
OtelCrewInstrumentor().instrument(tracer_provider=provider, agentops=sys.argv[1])
for name in ("first", "second"):
    with workflow(name):
        research_crew().kickoff(inputs={"topic": "a"})
provider.shutdown()
"""


@pytest.mark.parametrize(("mode", "level"), [("auto", "DEBUG"), ("on", "WARNING")])
def test_not_initialised_is_one_line_at_the_level_the_option_implies(mode: str, level: str) -> None:
    env = {key: value for key, value in os.environ.items() if key != "AGENTOPS_API_KEY"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    said = [line for line in result.stdout.splitlines() if "AgentOps is not initialised" in line]
    assert len(said) == 1, said
    assert said[0].startswith(f"LOG {level} otel_crew.agentops_sessions.processor otel-crew: AgentOps is not")
