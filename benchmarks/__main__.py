"""``python -m benchmarks [--short] [--output FILE]``: every benchmark in one run, progress on stderr. The tables
go between the results markers of FILE (BENCHMARKS.md, its prose written by hand), or make up FILE."""

import argparse
import datetime
import logging
import os
import platform
import sys
from importlib.metadata import distributions
from pathlib import Path

from benchmarks import kickoffs, processors
from benchmarks.common import Table

BEGIN, END = "<!-- results: written by python -m benchmarks -->", "<!-- end of results -->"
PACKAGES = ("crewai", "opentelemetry-sdk", "agentops", "otel-crew", *kickoffs.PEERS.values())


def run(short: bool, rounds: int | None) -> list[Table]:
    def progress(step: str) -> None:
        print(f"benchmarks: {step}", file=sys.__stderr__, flush=True)

    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})  # one core; threads started later inherit it
    logging.getLogger("otel_crew").setLevel(logging.ERROR)  # a flagged root's log line is the handler's I/O
    return [
        kickoffs.measure(
            rounds=rounds or (2 if short else 30), calls=1 if short else 3, peers=not short, progress=progress
        ),
        processors.span_costs(rounds=5 if short else 41, calls=300 if short else 5000, progress=progress),
        processors.threads(rounds=2 if short else 6, roots=400 if short else 4000, progress=progress),
        processors.open_roots(2_000 if short else 100_000, progress),
    ]


def _cell(value: object) -> str:
    if not isinstance(value, float):
        return str(value)
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def render(tables: list[Table], short: bool) -> str:
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    installed = {str(package.metadata["Name"]).lower(): package.version for package in distributions()}
    facts = [f"{os.cpu_count()} cores", platform.platform(terse=True), f"Python {platform.python_version()}"]
    facts += [f"{package} {installed.get(package, 'not installed')}" for package in PACKAGES]
    lines = [f"Run {when}, {'short (no peers; the numbers mean little)' if short else 'full'}: {', '.join(facts)}."]
    for title, header, rows in tables:
        lines += ["", f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--short", action="store_true", help="a few iterations, no peers: proves the code runs")
    parser.add_argument("--output", default="BENCHMARKS.md", type=Path)
    parser.add_argument("--rounds", type=int, help="rounds of kickoffs and flow runs (default 30; --short: 2)")
    arguments = parser.parse_args(argv)
    block = f"{BEGIN}\n{render(run(arguments.short, arguments.rounds), arguments.short)}\n{END}"
    before, found, rest = (arguments.output.read_text() if arguments.output.exists() else "").partition(BEGIN)
    arguments.output.write_text(f"{before}{block}{rest.partition(END)[2]}" if found else f"{block}\n")
    print(f"benchmarks: wrote {arguments.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
