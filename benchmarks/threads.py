"""Roots per second from 1, 2, 4 and 8 threads, with and without otel-crew's
processors: no lock convoy."""

from __future__ import annotations

import logging
import threading
import time

from benchmarks.harness import table
from benchmarks.spans import provider_with_noop_export

THREADS = (1, 2, 4, 8)
CHILDREN = 3


def _roots_per_second(threads: int, with_otel_crew: bool, seconds: float) -> float:
    from otel_crew import AgentOpsSessionProcessor, UnclosedRootProcessor, workflow

    provider, _ = provider_with_noop_export()
    processors = [UnclosedRootProcessor(), AgentOpsSessionProcessor()] if with_otel_crew else []
    for processor in processors:
        provider.add_span_processor(processor)
    tracer = provider.get_tracer("threads")
    counts = [0] * threads
    stop = threading.Event()

    def work(index: int) -> None:
        while not stop.is_set():
            with workflow("root", tracer_provider=provider):
                for _ in range(CHILDREN):
                    tracer.start_span("child").end()
            counts[index] += 1

    workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    for processor in processors:
        processor.shutdown()
    return sum(counts) / seconds


def measure(seconds: float, rounds: int) -> dict[tuple[int, bool], list[float]]:
    logging.getLogger("otel_crew").setLevel(logging.ERROR)
    results: dict[tuple[int, bool], list[float]] = {}
    for round_ in range(rounds):  # interleaved: with and without alternate, order rotated
        for threads in THREADS:
            for with_otel_crew in (False, True) if round_ % 2 == 0 else (True, False):
                results.setdefault((threads, with_otel_crew), []).append(
                    _roots_per_second(threads, with_otel_crew, seconds)
                )
    return results


def report(results: dict[tuple[int, bool], list[float]]) -> str:
    import statistics

    rows = []
    for threads in THREADS:
        bare = statistics.median(results[(threads, False)])
        ours = statistics.median(results[(threads, True)])
        rows.append([threads, f"{bare:,.0f}", f"{ours:,.0f}", f"{ours / bare:.2f}"])
    return (
        "## Threads\n\n"
        f"Roots per second (a `workflow()` root with {CHILDREN} child spans, no crew) from N threads at once, on a\n"
        "provider with a no-op exporter, without and with otel-crew's two processors; medians of interleaved\n"
        "rounds. The GIL caps Python threads at about one core; what matters is that the ratio holds as\n"
        "threads are added (no lock convoy).\n\n"
        + table(["threads", "roots/s without", "roots/s with otel-crew", "ratio"], rows)
        + "\n"
    )
