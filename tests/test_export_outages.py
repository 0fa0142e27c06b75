"""One line per export outage for the exporters otel-crew sets up (``configure()``
and the zero-code start), and the user's own exporters' logging left alone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CREWAI

OURS = (
    "otel-crew: cannot export spans to {url} (grpc) (each batch retries for up to 1 s, then is dropped): "
    "start an OTLP receiver there or point OTEL_EXPORTER_OTLP_ENDPOINT at one"
)

CONFIGURED = """
import logging
logging.basicConfig(format="%(name)s: %(message)s")
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from otel_crew import configure, workflow

provider = configure(instrument=False)  # the exporter configure() builds, with or without CrewAI
with workflow("nightly-report", tracer_provider=provider):
    pass
provider.shutdown()
print("SHUT DOWN", flush=True)
# The user's own exporter, to the same dead endpoint: its own lines are the user's business.
users = TracerProvider().get_tracer("users").start_span("users-span")
users.end()
OTLPSpanExporter(timeout=1).export([users])
"""

ZERO_CODE_APP = """
from otel_crew import workflow

with workflow("zero-code"):
    pass
"""


def dead_endpoint() -> dict[str, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_EXPORTER_OTLP")}
    env.pop("OTEL_SDK_DISABLED", None)  # conftest's, for CrewAI 0.102's telemetry: these providers must record
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_EXPORTER_OTLP_TIMEOUT="1",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
    )
    return env


def test_configure_says_an_outage_in_one_line_and_leaves_the_users_exporter_alone() -> None:
    env = dead_endpoint()
    result = subprocess.run(
        [sys.executable, "-c", CONFIGURED], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == "SHUT DOWN\n"
    first, *users = result.stderr.splitlines()
    assert first == f"otel_crew.export_outages: {OURS.format(url=env['OTEL_EXPORTER_OTLP_ENDPOINT'])}"
    # The rest is the user's own export, logged by OpenTelemetry's exporter as it always is.
    assert users and all(line.startswith("opentelemetry.exporter.otlp.proto.grpc.exporter: ") for line in users)
    assert any("Failed to export" in line for line in users)


@pytest.mark.skipif(CREWAI is None, reason="the zero-code start instruments CrewAI")
def test_the_zero_code_start_says_an_outage_in_one_line(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(ZERO_CODE_APP)
    env = dead_endpoint()
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    result = subprocess.run(
        [str(instrument), sys.executable, str(app)], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.splitlines() == [OURS.format(url=env["OTEL_EXPORTER_OTLP_ENDPOINT"])]
