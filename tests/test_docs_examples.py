"""Every Python example in README.md and docs/ is a complete program: each runs
as a file of its own, with nothing before it, in an environment without the
test suite's quieting variables (CrewAI's telemetry and tracing switches, OTLP
endpoints), in a terminal of its own (CrewAI asks its first-run question only
on a terminal) and a fresh home directory, and shows exactly what the page
shows in the ``text`` block right after it (standard output and standard error
together), or nothing when the page shows nothing. Trace ids and durations may
differ.

A block the page says needs a Collector (``<!-- test: with an OTLP receiver
at OTEL_EXPORTER_OTLP_ENDPOINT -->`` on the line before it) runs with a real
loopback OTLP receiver there, and its root must arrive. Shell examples run
elsewhere: ``otel-crew demo`` and ``doctor`` in tests/cli/, the test command
in CI itself, ``mkdocs build --strict`` in ``nox -s docs``.
"""

from __future__ import annotations

import ast
import os
import pty
import re
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from agentops_server import AgentOpsStandIn
from conftest import CREWAI
from otlp_receivers import GrpcReceiver

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(?:<!-- test: (?P<needs>[^\n]*?) -->\n)?```(?P<language>\w+)\n(?P<body>.*?)^```", re.M | re.S)
NEEDS_RECEIVER = "with an OTLP receiver at OTEL_EXPORTER_OTLP_ENDPOINT"
# What the test suite sets to keep itself quiet and offline, and a reader's shell does not have.
SUITE_ONLY = ("CREWAI_DISABLE_TELEMETRY", "CREWAI_TRACING_ENABLED", "OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP")
USES_CREWAI = ("crewai", "otel_crew.cli.demo_crews", "otel_crew.cli.local_model")
COLOURS = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
VARYING = [
    (re.compile(r"\b[0-9a-f]{32}\b"), "<trace id>"),
    (re.compile(r"\b\d+\.\d+ ?m?s\b"), "<duration>"),
]


@dataclass(frozen=True)
class Example:
    page: str
    number: int
    code: str
    shown: str  # what the page shows it printing ("" when it shows nothing)
    needs: str | None

    @property
    def uses_crewai(self) -> bool:
        return any(re.search(rf"^\s*(from|import) {re.escape(name)}\b", self.code, re.M) for name in USES_CREWAI)

    @property
    def instruments(self) -> bool:
        """Calls ``instrument()`` itself: without CrewAI that says, by design, that there is nothing to instrument."""
        return ".instrument(" in self.code


def examples() -> list[Example]:
    found = []
    for page in PAGES:
        fences = list(FENCE.finditer(page.read_text()))
        for index, fence in enumerate(fences):
            if fence["language"] != "python":
                continue
            after = fences[index + 1] if index + 1 < len(fences) else None
            shown = after["body"] if after is not None and after["language"] == "text" else ""
            name = str(page.relative_to(ROOT))
            found.append(Example(name, len([e for e in found if e.page == name]), fence["body"], shown, fence["needs"]))
    return found


EXAMPLES = examples()


def normalised(text: str) -> list[str]:
    for pattern, placeholder in VARYING:
        text = pattern.sub(placeholder, text)
    return [line.rstrip() for line in text.strip("\n").splitlines()]


def readers_environment(home: Path, **variables: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(SUITE_ONLY)}
    env["HOME"] = str(home)  # a first run: CrewAI asks its first-run questions then
    env.update(variables)
    return env


def run(example: Example, directory: Path, **variables: str) -> str:
    """Run the example in a terminal of its own (a pseudo-terminal: CrewAI prompts only on one);
    what the terminal showed, without colours."""
    program = directory / "example.py"
    program.write_text(example.code)
    terminal, its_end = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, str(program)],
        cwd=directory,
        env=readers_environment(directory, **variables),
        stdin=its_end,
        stdout=its_end,
        stderr=its_end,
    )
    os.close(its_end)
    shown = bytearray()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        readable, _, _ = select.select([terminal], [], [], 1)
        if not readable:
            continue
        try:
            chunk = os.read(terminal, 65536)
        except OSError:  # the program exited and its end of the terminal closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(terminal)
    returncode = process.wait(timeout=10)
    text = COLOURS.sub("", shown.decode(errors="replace")).replace("\r\n", "\n")
    assert returncode == 0, text[-3000:]
    return text


def test_the_pages_have_examples_and_every_one_is_a_program() -> None:
    assert {example.page for example in EXAMPLES} >= {"README.md", "docs/getting-started.md", "docs/flows.md"}
    for example in EXAMPLES:
        ast.parse(example.code)  # a program, not a fragment with "..." in it


@pytest.mark.scenario
@pytest.mark.parametrize("example", EXAMPLES, ids=[f"{example.page}-{example.number}" for example in EXAMPLES])
def test_an_example_runs_as_written_and_prints_what_the_page_shows(
    example: Example, tmp_path: Path, agentops_stand_in: AgentOpsStandIn
) -> None:
    if example.uses_crewai and (CREWAI is None or CREWAI < (1,)):
        pytest.skip("the examples are written for the CrewAI `.[crewai]` installs (1.x)")
    if example.instruments and CREWAI is None:
        pytest.skip("instrument() without CrewAI says there is nothing to instrument (tests/test_without_crewai.py)")
    if example.uses_crewai:
        # Offline, CrewAI's own telemetry holds each exit for about 10 s, and its first-run prompt waits 20 s on a
        # terminal: the example itself switches both off.
        assert 'os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")' in example.code
        assert 'os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")' in example.code
    if example.needs == NEEDS_RECEIVER:
        receiver = GrpcReceiver().start()
        try:
            printed = run(example, tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url)
            received = receiver.wait_for(1)
        finally:
            receiver.stop()
        assert "nightly-report" in {span.name for span in received}
    else:
        assert example.needs is None, f"unknown precondition {example.needs!r}"
        printed = run(example, tmp_path)
    assert normalised(printed) == normalised(example.shown)


def test_the_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200
