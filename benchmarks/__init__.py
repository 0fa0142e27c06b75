"""What the benchmarks share: a provider that counts its spans, interleaved rounds, timing, paired medians."""

import contextlib
import gc
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

Table = tuple[str, list[str], list[list[object]]]  # title, header (units in it), rows of labels and numbers
Progress = Callable[[str], None]  # told what is measured now, as it begins


class Counter(SpanProcessor):  # the spans' last stop, in place of a batch processor and an exporter
    count = 0

    def on_end(self, span: ReadableSpan) -> None:
        self.count += 1


def noop_provider(*processors: SpanProcessor) -> tuple[TracerProvider, Counter]:
    """A provider with ``processors`` ahead of a counter, exporting nothing."""
    provider, counter = TracerProvider(shutdown_on_exit=False), Counter()
    for processor in [*processors, counter]:
        provider.add_span_processor(processor)
    return provider, counter


def interleave(runs: Mapping[Any, Callable[[], Any]], rounds: int, progress: Progress) -> dict[Any, list[Any]]:
    """Every run once per round, in an order rotated every round and reversed every other (see BENCHMARKS.md)."""
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
    start = time.perf_counter()
    for _ in range(calls):
        run()
    seconds = time.perf_counter() - start
    gc.enable()  # (left off if run raised: the benchmark ends then)
    return seconds / calls


def timed_with_spans(run: Callable[[], object], calls: int, counter: Counter) -> list[float]:
    """Seconds per call and spans per call of ``run``, after one warm-up run (the first run of newly wrapped
    code pays for the caches)."""
    run()
    before = counter.count
    return [timed(run, calls), (counter.count - before) / calls]


def paired(variant: Sequence[float], baseline: Sequence[float]) -> tuple[float, float]:
    """Medians over rounds of (variant - baseline) and of (variant / baseline): each round is one pair."""
    pairs = list(zip(variant, baseline, strict=True))
    return statistics.median(a - b for a, b in pairs), statistics.median(a / b for a, b in pairs)


@contextlib.contextmanager
def instrumented(instrumentors: Sequence[Any], provider: TracerProvider) -> Iterator[None]:
    """``instrumentors`` (None: none) instrumenting ``provider`` for the block, undone in reverse at its end."""
    with contextlib.ExitStack() as undo:
        for instrumentor in instrumentors:
            if instrumentor is not None:
                instrumentor.instrument(tracer_provider=provider)
                undo.callback(instrumentor.uninstrument)
        yield
