"""(b) The processors' cost per root and per child span against one SDK span, and roots per second from 1 to
8 threads; (c) open roots at scale: memory per root and the time to flag them all."""

import functools
import itertools
import statistics
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from benchmarks.common import Table, interleave, noop_provider, paired, timed
from otel_crew import AgentOpsSessionProcessor, UnclosedRootProcessor

TARGETS = {"root": 0.3, "child": 0.15}  # both processors together, as a share of one SDK span (issue 15)
NONE, BOTH = "none (one SDK span)", "both"


def _providers() -> dict[str, TracerProvider]:
    processors: dict[str, list[SpanProcessor]] = {NONE: [], "UnclosedRootProcessor": [UnclosedRootProcessor()]}
    processors["UnclosedRootProcessor, no journal"] = [UnclosedRootProcessor(journal=False)]
    processors |= {"AgentOpsSessionProcessor": [AgentOpsSessionProcessor()]}
    processors[BOTH] = [UnclosedRootProcessor(), AgentOpsSessionProcessor()]
    return {name: noop_provider(*chosen)[0] for name, chosen in processors.items()}


def _span(tracer: trace.Tracer, context: Context | None) -> None:
    tracer.start_span("span", context).end()


def span_costs(rounds: int, calls: int, progress: Callable[[str], None]) -> Table:
    runs: dict[Any, Callable[[], Any]] = {}
    for name, provider in (providers := _providers()).items():
        tracer = provider.get_tracer("bench")
        under_root = trace.set_span_in_context(tracer.start_span("open root"))
        runs[name, "root"] = functools.partial(timed, functools.partial(_span, tracer, None), calls)
        runs[name, "child"] = functools.partial(timed, functools.partial(_span, tracer, under_root), calls)
    seconds = interleave(runs, rounds, lambda step: progress(f"processor cost per span: {step}"))
    rows: list[list[object]] = []
    for (name, kind), times in sorted(seconds.items(), key=lambda item: item[0][1] != "root"):
        sdk, target = seconds[NONE, kind], f"at most {TARGETS[kind]}" if name == BOTH else "-"
        added = paired(times, sdk)[0]
        rows.append([kind, name, statistics.median(times) * 1e6, added * 1e6, added / statistics.median(sdk), target])
    for provider in providers.values():
        provider.shutdown()
    header = ["span", "processors", "span (µs)", "added (µs)", "added / SDK span", "target"]
    return "(b) Processor cost per span", header, rows


def _roots_per_second(provider: TracerProvider, threads: int, roots: int) -> float:
    tracer = provider.get_tracer("threads")

    def requests(_: int) -> None:
        for _ in range(roots // threads):
            with tracer.start_as_current_span("request"):  # a root, with three children
                for _ in range(3):
                    tracer.start_span("child").end()

    with ThreadPoolExecutor(threads) as pool:
        return roots / timed(lambda: list(pool.map(requests, range(threads))))


def threads(rounds: int, roots: int, progress: Callable[[str], None]) -> Table:
    providers, counts = _providers(), (1, 2, 4, 8)
    runs: dict[Any, Callable[[], Any]] = {}
    for n, name in itertools.product(counts, (NONE, BOTH)):
        runs[n, name] = functools.partial(_roots_per_second, providers[name], n, roots)
    rates = interleave(runs, rounds, lambda step: progress(f"roots per second from 1 to 8 threads: {step}"))
    for provider in providers.values():
        provider.shutdown()
    rows: list[list[object]] = []
    for n in counts:
        without, with_both = rates[n, NONE], rates[n, BOTH]
        rows.append([n, statistics.median(without), statistics.median(with_both), paired(with_both, without)[1]])
    header = ["threads", "roots/s, no processors", "roots/s, both processors", "with / without"]
    return "(b) Roots per second (a root span and 3 children)", header, rows


def open_roots(count: int, progress: Callable[[str], None]) -> Table:
    """Memory per open root in both processors, the journal written; then the time from every root being due
    (on a clock the benchmark drives) until they are all flagged: one poll."""
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
    for span, processor in itertools.product(spans, processors):
        processor.on_end(span)
    for processor in processors:
        processor.shutdown()
    header = ["open roots", "memory per root, both processors (bytes)", "time to flag all (s)"]
    return "(c) Open roots at scale", header, [[count, per_root, to_flag]]
