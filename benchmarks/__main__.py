"""Run every benchmark and write BENCHMARKS.md: ``python -m benchmarks [--short] [--output FILE]``."""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from benchmarks import hot_path, kickoff, threads, unclosed_scale
from benchmarks.harness import machine, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--short", action="store_true", help="a few iterations: proves the suite runs, measures little")
    parser.add_argument("--output", default="BENCHMARKS.md", help="where the report goes (default: BENCHMARKS.md)")
    arguments = parser.parse_args(argv)
    short = arguments.short
    sections = []

    print("kickoff overhead ...", file=sys.stderr, flush=True)
    rounds, calls, counted, profiled = (2, 1, 1, 2) if short else (250, 5, 20, 200)
    result = kickoff.measure(rounds=rounds, calls=calls, counted_kickoffs=counted, profiled_kickoffs=profiled)
    sections.append(kickoff.report(result))
    print("processor hot path ...", file=sys.stderr, flush=True)
    sections.append(hot_path.report(hot_path.measure(blocks=2 if short else 40)))
    print("unclosed roots at scale ...", file=sys.stderr, flush=True)
    sections.append(
        unclosed_scale.report(
            unclosed_scale.measure(roots=2_000 if short else 100_000, idle_seconds=0.5 if short else 2.0)
        )
    )
    print("threads ...", file=sys.stderr, flush=True)
    sections.append(threads.report(threads.measure(seconds=0.2 if short else 1.0, rounds=1 if short else 4)))

    facts = [[key, value] for key, value in machine().items()]
    facts.append(["date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")])
    facts.append(["mode", "short (proves the suite runs; numbers mean little)" if short else "full"])
    header = (
        "# Benchmarks\n\n"
        "Written by `nox -s bench` (`python -m benchmarks`). Each comparison is measured in one run, interleaved in\n"
        "blocks (A B A B ..., order rotated), and reported as medians and ratios. The garbage collector runs\n"
        "between timed stretches, not inside them.\n\n" + table(["", ""], facts) + "\n"
    )
    Path(arguments.output).write_text("\n".join([header, *sections]))
    print(f"wrote {arguments.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
