"""Every Python example in the README runs, as written, against real crews,
and a Python block followed by a ``text`` block prints what that block shows.

Each block runs in a fresh process after a short prelude that supplies what
the prose assumes (``research_crew``, ``writing_crew``, a ``provider`` with an
in-memory exporter); a complete example simply redefines them. The shell
examples run elsewhere: ``otel-crew demo`` and ``otel-crew doctor`` in
tests/cli/, the test command in CI itself, and ``docker compose`` in the
Docker test where an engine exists.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
FENCES = re.findall(r"```(\w+)\n(.*?)```", README.read_text(), flags=re.DOTALL)
BLOCKS = [body for language, body in FENCES if language == "python"]
# What a Python block prints, where the README shows it in the text block right after it.
SHOWN = {
    body: FENCES[number + 1][1]
    for number, (language, body) in enumerate(FENCES[:-1])
    if language == "python" and FENCES[number + 1][0] == "text"
}

PRELUDE = """
import os
sdk_switch = os.environ.pop("OTEL_SDK_DISABLED", None)  # see conftest: CrewAI 0.102
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_crew.cli.demo_crews import research_crew as _make_crew
research_crew, writing_crew = _make_crew(), _make_crew(name="writing")
provider = TracerProvider()
_exported = InMemorySpanExporter()
provider.add_span_processor(SimpleSpanProcessor(_exported))
"""

EPILOGUE = """
print("SPANS", sorted({span.name for span in _exported.get_finished_spans()}))
"""


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.scenario
@pytest.mark.parametrize("block", BLOCKS, ids=[f"block-{number}" for number in range(len(BLOCKS))])
def test_readme_example_runs(block: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PRELUDE + block + EPILOGUE],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    if block in SHOWN:
        shown = SHOWN[block].splitlines()
        # The shown lines, in order; other libraries' own chatter on stdout aside.
        printed = [line for line in result.stdout.splitlines() if line in shown]
        assert printed == shown, result.stdout[-2000:]


def test_the_complete_example_shows_what_it_prints() -> None:
    assert any("ConsoleSpanExporter" in block for block in SHOWN)
