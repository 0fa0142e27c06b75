"""The benchmark code, in its short run on the product alone (no peers): every section is written, and what
must be positive is (times, spans, rates, memory). No timing is asserted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("crewai")
# The benchmarks run on the latest line only (`nox -s bench` installs it): their harness is checked there.
pytestmark = [pytest.mark.one_line, pytest.mark.scenario]

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = [
    "(a) Added time per kickoff and per flow run",
    "(b) Processor cost per span",
    "(b) Roots per second (a root span and 3 children)",
    "(c) Open roots at scale",
    "(d) Added time per LLM call",
]


def _tables(text: str) -> dict[str, list[dict[str, str]]]:
    """Section title -> rows, each a dict from the header's columns to the cells."""
    tables: dict[str, list[dict[str, str]]] = {}
    title, header = "", []
    for line in text.splitlines():
        if line.startswith("### "):
            title, header = line[4:], []
            tables[title] = []
        elif line.startswith("|") and not line.startswith("|---"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if header:
                tables[title].append(dict(zip(header, cells, strict=True)))
            else:
                header = cells
    return tables


def _number(cell: str) -> float:
    return float(cell.replace(",", ""))


def test_the_short_run_writes_every_section_with_sane_numbers(tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("AGENTOPS_", "OTEL_"))}
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT), environment.get("PYTHONPATH", "")])
    environment["OTEL_CREW_STATE_DIR"] = str(tmp_path / "state")  # the open-roots journal, not in $HOME
    command = [sys.executable, "-m", "benchmarks", "--short", "--output", str(report)]
    finished = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, check=False)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "benchmarks: kickoffs and flow runs: round 1 of" in finished.stderr  # progress, while it runs
    tables = _tables(report.read_text())
    assert list(tables) == SECTIONS

    kickoffs = tables[SECTIONS[0]]
    assert {row["variant"] for row in kickoffs} == {"bare CrewAI", "bare CrewAI, again", "bare SDK spans", "otel-crew"}
    assert all(_number(row["median (ms)"]) > 0 for row in kickoffs)
    for row in kickoffs:
        if row["variant"] in ("bare SDK spans", "otel-crew"):
            # a crew kickoff is at least a kickoff and two agents (and a tool span where the tool point is used)
            assert _number(row["spans"]) >= 3, row
            assert _number(row["ratio to bare"]) > 0
    assert all(_number(row["span (µs)"]) > 0 for row in tables[SECTIONS[1]])
    assert {row["span"] for row in tables[SECTIONS[1]]} == {"root", "child"}
    rates = tables[SECTIONS[2]]
    assert [row["threads"] for row in rates] == ["1", "2", "4", "8"]
    assert all(_number(row[column]) > 0 for row in rates for column in row)
    (scale,) = tables[SECTIONS[3]]
    assert all(_number(cell) > 0 for cell in scale.values())
    llm_calls = {row["variant"]: row for row in tables[SECTIONS[4]]}
    assert all(_number(row["median (ms)"]) > 0 for row in llm_calls.values())
    assert _number(llm_calls["bare"]["spans per call"]) == 0
    assert _number(llm_calls["otel-crew"]["spans per call"]) == 1  # one inference span per call
    for variant in ("GenAI OpenAI instrumentation", "both (one span per call)"):
        if variant in llm_calls:  # the GenAI OpenAI instrumentation is installed
            assert _number(llm_calls[variant]["spans per call"]) == 1, variant
