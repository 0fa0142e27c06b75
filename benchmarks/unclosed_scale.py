"""The unclosed-root processor with many roots open: memory per root, time from
a deadline until every root is flagged, and the watcher's CPU while it waits."""

from __future__ import annotations

import logging
import os
import threading
import time
import tracemalloc
from dataclasses import dataclass
from typing import Any

from benchmarks.harness import table, verdict
from benchmarks.spans import provider_with_noop_export


@dataclass
class ScaleResult:
    roots: int
    bytes_per_root: float
    flag_latency: float
    idle_cpu_seconds: float
    idle_seconds: float


def _bytes_per_root(roots: int) -> float:
    from otel_crew import UnclosedRootProcessor

    provider, _ = provider_with_noop_export()
    tracer = provider.get_tracer("scale")
    spans: list[Any] = [tracer.start_span(f"root-{number}") for number in range(roots)]  # made before measuring
    processor = UnclosedRootProcessor(idle_timeout=3600)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for span in spans:
        processor.on_start(span)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    processor.shutdown()
    return grown / roots


def _watcher_cpu_seconds(thread: threading.Thread) -> float:
    """CPU the watcher thread itself used (Linux /proc; 0 where unavailable)."""
    try:
        with open(f"/proc/self/task/{thread.native_id}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _new_watcher(before: set[int]) -> threading.Thread:
    (watcher,) = [t for t in threading.enumerate() if t.name == "otel-crew-unclosed-roots" and id(t) not in before]
    return watcher


def measure(roots: int, idle_seconds: float) -> ScaleResult:
    from otel_crew import UnclosedRoot, UnclosedRootProcessor

    logging.getLogger("otel_crew").setLevel(logging.ERROR)  # flagging's log line is I/O, not the processor
    per_root = _bytes_per_root(roots)
    provider, _ = provider_with_noop_export()
    flagged = 0
    all_flagged = threading.Event()

    def count(info: UnclosedRoot) -> None:
        nonlocal flagged
        flagged += 1
        if flagged == roots:
            all_flagged.set()

    # No deadline may come due while the idle CPU is measured: opening the roots
    # takes up to a few seconds, then the idle window, then a margin.
    deadline_after = 3.0 + idle_seconds + roots / 20_000
    processor = UnclosedRootProcessor(
        idle_timeout=deadline_after, max_age=None, on_unclosed=count, max_tracked_roots=roots
    )
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("scale")
    existing = {id(t) for t in threading.enumerate()}
    opened = [tracer.start_span(f"root-{number}") for number in range(roots)]
    last_deadline = time.monotonic() + deadline_after
    watcher = _new_watcher(existing)
    cpu_before, waited_from = _watcher_cpu_seconds(watcher), time.monotonic()
    time.sleep(max(0.0, min(idle_seconds, last_deadline - time.monotonic() - 0.3)))  # the watcher should sleep
    idle_cpu, idle = _watcher_cpu_seconds(watcher) - cpu_before, time.monotonic() - waited_from
    all_flagged.wait(timeout=60 + roots / 1000)
    latency = time.monotonic() - last_deadline
    for span in opened:
        span.end()
    processor.shutdown()
    return ScaleResult(roots, per_root, latency, idle_cpu, idle)


def report(result: ScaleResult) -> str:
    rows = [
        ["memory per tracked root", f"{result.bytes_per_root:.0f} bytes", "small, fixed", "-"],
        [
            f"from the last deadline until all {result.roots:,} roots are flagged",
            f"{result.flag_latency:.2f} s",
            "within 1 s",
            verdict(result.flag_latency <= 1.0),
        ],
        [
            f"watcher thread CPU while {result.roots:,} roots wait, no deadline due",
            f"{result.idle_cpu_seconds * 1000:.1f} ms in {result.idle_seconds:.1f} s",
            "it sleeps",
            verdict(result.idle_cpu_seconds <= 0.02 * max(result.idle_seconds, 0.1)),
        ],
    ]
    return (
        "## Unclosed roots at scale\n\n"
        f"{result.roots:,} open roots on one UnclosedRootProcessor. Memory is what tracemalloc sees the processor\n"
        "allocate per root (the spans themselves excluded). The deadline test opens every root, then waits for the\n"
        "single watcher thread to flag them all (event, counter, callback; the warning log line is switched off,\n"
        "its I/O is the handler's). While no deadline is due the watcher thread (its own CPU, from /proc) sleeps.\n\n"
        + table(["measure", "result", "target", ""], rows)
        + "\n"
    )
