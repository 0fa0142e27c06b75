"""(b) Processor cost per root and child span, roots per second on 1-8 threads; (c) 100,000 open roots."""

import functools
import itertools
import statistics
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opentelemetry import trace

from benchmarks import Progress, Table, interleave, noop_provider, paired, timed
from otel_crew import AgentOpsSessionProcessor, UnclosedRootProcessor

TARGETS = {"root": 0.3, "child": 0.15}  # both processors together, as a share of one SDK span (issue 15)
NONE, BOTH, THREADS = "none (one SDK span)", "both", (1, 2, 4, 8)


def _spans(tracer: trace.Tracer, parent: trace.Span | None, calls: int) -> float:  # parent None: a root
    context = None if parent is None else trace.set_span_in_context(parent)
    return timed(lambda: tracer.start_span("span", context).end(), calls)


def _roots_per_second(tracer: trace.Tracer, threads: int, roots: int) -> float:
    def requests(_: int) -> None:
        for _ in range(roots // threads):
            with tracer.start_as_current_span("request"):  # a root, with three children
                for _ in range(3):
                    tracer.start_span("child").end()

    with ThreadPoolExecutor(threads) as pool:
        return roots / timed(lambda: list(pool.map(requests, range(threads))))


def span_costs(rounds: int, calls: int, roots: int, progress: Progress) -> list[Table]:
    providers = {
        NONE: noop_provider()[0],
        BOTH: noop_provider(UnclosedRootProcessor(), AgentOpsSessionProcessor())[0],
        "both, no journal": noop_provider(UnclosedRootProcessor(journal=False), AgentOpsSessionProcessor())[0],
    }
    runs = dict[Any, Callable[[], float]]()
    for name, provider in providers.items():
        tracer = provider.get_tracer("bench")
        runs[name, "root"] = functools.partial(_spans, tracer, None, calls)
        runs[name, "child"] = functools.partial(_spans, tracer, tracer.start_span("open root"), calls)
        if name in (NONE, BOTH):
            runs |= {(name, n): functools.partial(_roots_per_second, tracer, n, roots) for n in THREADS}
    results = interleave(runs, rounds, lambda step: progress(f"processor cost per span, roots per second: {step}"))
    for provider in providers.values():
        provider.shutdown()
    costs: list[list[object]] = []
    for kind, name in itertools.product(TARGETS, providers):
        times, sdk = results[name, kind], results[NONE, kind]
        added, target = paired(times, sdk)[0], TARGETS[kind] if name == BOTH else "-"
        costs.append([kind, name, statistics.median(times) * 1e6, added * 1e6, added / statistics.median(sdk), target])
    rates = [[n, statistics.median(results[BOTH, n]), paired(results[BOTH, n], results[NONE, n])[1]] for n in THREADS]
    cost_header = ["span", "processors", "span (µs)", "added (µs)", "added / SDK span", "target: at most"]
    rate_header = ["threads", "roots/s, both processors", "with / without"]
    return [
        ("(b) Processor cost per span", cost_header, costs),
        ("(b) Roots per second (a root span and 3 children)", rate_header, rates),
    ]


def open_roots(count: int, progress: Progress) -> Table:
    """Memory per open root in both processors, the journal written; then one poll flags them all, due at once."""
    progress(f"{count:,} open roots")
    now, flagged = [0.0], list[object]()
    watcher = UnclosedRootProcessor(60, None, on_unclosed=flagged.append, max_tracked_roots=count, clock=lambda: now[0])
    processors, tracer = [watcher, AgentOpsSessionProcessor()], noop_provider()[0].get_tracer("scale")
    spans: list[Any] = [tracer.start_span("root") for _ in range(count)]
    tracemalloc.start()
    for span, processor in itertools.product(spans, processors):
        processor.on_start(span, None)
    watcher.force_flush()  # the journal written (as the watcher does within a second): its steady state
    per_root = tracemalloc.get_traced_memory()[0] / count
    tracemalloc.stop()
    now[0] = 61.0
    to_flag = timed(watcher.poll)
    assert len(flagged) == count, f"{len(flagged)} of {count} roots flagged"
    for processor in processors:
        processor.shutdown()  # ends the roots
    header = ["open roots", "memory per root, both processors (bytes)", "time to flag all (s)"]
    return "(c) Open roots at scale", header, [[count, per_root, to_flag]]
