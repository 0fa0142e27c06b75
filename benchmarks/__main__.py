"""``python -m benchmarks [--short] [--output FILE]``: all in one run; the tables go between FILE's results markers."""

import argparse
import datetime
import functools
import logging
import os
import platform
import sys
from importlib.metadata import distributions
from pathlib import Path

from benchmarks import Table, kickoffs, llm_calls, processors

BEGIN, END = "<!-- results: written by python -m benchmarks -->", "<!-- end of results -->"
PACKAGES = ("crewai", "opentelemetry-sdk", "agentops", "otel-crew", *kickoffs.PEERS.values(), llm_calls.PACKAGE)


def render(tables: list[Table], short: bool) -> str:
    def cell(value: object) -> str:
        return (f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}") if isinstance(value, float) else str(value)

    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    installed = {str(package.metadata["Name"]).lower(): package.version for package in distributions()}
    facts = [f"{os.cpu_count()} cores", platform.platform(terse=True), f"Python {platform.python_version()}"]
    facts += [f"{package} {installed.get(package, 'not installed')}" for package in PACKAGES]
    lines = [f"Run {when}, {'short (the numbers mean little)' if short else 'full'}: {', '.join(facts)}."]
    for title, header, rows in tables:
        lines += ["", f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--short", action="store_true", help="a few iterations: proves the code runs")
    parser.add_argument("--output", default="BENCHMARKS.md", type=Path)
    arguments = parser.parse_args(argv)
    short, output = arguments.short, arguments.output
    progress = functools.partial(print, "benchmarks:", file=sys.__stderr__, flush=True)
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})  # one core; threads started later inherit it
    logging.getLogger("otel_crew").setLevel(logging.ERROR)  # a flagged root's log line is the handler's I/O
    tables = [kickoffs.measure(rounds=2 if short else 30, calls=1 if short else 3, progress=progress)]
    tables += processors.span_costs(2 if short else 41, 100 if short else 5000, 80 if short else 2000, progress)
    tables.append(processors.open_roots(2_000 if short else 100_000, progress))
    tables.append(llm_calls.measure(rounds=2 if short else 30, calls=2 if short else 50, progress=progress))
    block = f"{BEGIN}\n{render(tables, short)}\n{END}"
    before, found, rest = (output.read_text() if output.exists() else "").partition(BEGIN)
    output.write_text(f"{before}{block}{rest.partition(END)[2]}" if found else f"{block}\n")
    print(f"benchmarks: wrote {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
