"""What the benchmarks share: a provider that exports nowhere, interleaved rounds, timing, paired medians."""

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

Table = tuple[str, list[str], list[list[object]]]  # title, header (units in it), rows of labels and numbers


class CountingExporter(SpanExporter):
    count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS


def noop_provider(*processors: SpanProcessor) -> tuple[TracerProvider, CountingExporter]:
    """A provider with ``processors`` ahead of an exporter that sends nothing (it counts)."""
    provider, exporter = TracerProvider(shutdown_on_exit=False), CountingExporter()
    for processor in [*processors, SimpleSpanProcessor(exporter)]:
        provider.add_span_processor(processor)
    return provider, exporter


def interleave(
    runs: dict[Any, Callable[[], Any]], rounds: int, progress: Callable[[str], None]
) -> dict[Any, list[Any]]:
    """Every run once per round, the order rotated each round and reversed every other, so that slow moments
    of the machine hit every variant alike and each pair of neighbours is measured in both orders."""
    results: dict[Any, list[Any]] = {key: [] for key in runs}
    for index in range(rounds):
        progress(f"round {index + 1} of {rounds}")
        keys = list(runs)[index % len(runs) :] + list(runs)[: index % len(runs)]
        for key in keys[:: -1 if index % 2 else 1]:
            results[key].append(runs[key]())
    return results


def timed(run: Callable[[], object], calls: int = 1) -> float:
    """Seconds per call over ``calls`` runs. The garbage collector runs before, not inside: its pauses are noise."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(calls):
            run()
        return (time.perf_counter() - start) / calls
    finally:
        gc.enable()


def paired(variant: Sequence[float], baseline: Sequence[float]) -> tuple[float, float]:
    """Medians over rounds of (variant - baseline) and of (variant / baseline): each round is one pair."""
    pairs = list(zip(variant, baseline, strict=True))
    return statistics.median(a - b for a, b in pairs), statistics.median(a / b for a, b in pairs)
