"""The processors' hot path: ``on_start`` + ``on_end`` for a non-root span,
against the SDK's own cost of that span."""

from __future__ import annotations

import logging

from opentelemetry.sdk.trace import SpanProcessor

from benchmarks.harness import Blocks, Variant, interleave, table, us, verdict
from benchmarks.spans import child_span_under, provider_with_noop_export

CALLS = 5000


def _variant(name: str, processor: SpanProcessor | None) -> Variant:
    provider, _ = provider_with_noop_export()
    if processor is not None:
        provider.add_span_processor(processor)
    tracer = provider.get_tracer("hot-path")
    root = tracer.start_span("root")  # open: every child is a non-root span mapped to this root
    return Variant(name, lambda: child_span_under(tracer, root))


def measure(blocks: int) -> Blocks:
    from otel_crew import AgentOpsSessionProcessor, UnclosedRootProcessor

    logging.getLogger("otel_crew").setLevel(logging.ERROR)
    variants = [
        _variant("bare SDK span", None),
        _variant("+ UnclosedRootProcessor", UnclosedRootProcessor()),
        _variant("+ AgentOpsSessionProcessor", AgentOpsSessionProcessor()),
    ]
    return interleave(variants, blocks=blocks, calls=CALLS, warmup=100)


def report(blocks: Blocks) -> str:
    bare = blocks.median("bare SDK span")
    rows = [["bare SDK span", us(bare), "-", "-", "-"]]
    for name in list(blocks.means)[1:]:
        added = blocks.paired_difference(name, "bare SDK span")
        rows.append([name, us(blocks.median(name)), us(added), f"{added / bare:.3f}", verdict(added / bare <= 0.2)])
    return (
        "## Processor hot path\n\n"
        "A non-root span started and ended under an open root, on a provider with a no-op exporter, without and\n"
        "with each processor. The processor's cost is the paired difference; the target is at most 0.2 of the\n"
        "bare span.\n\n"
        + table(["variant", "median span", "processor cost", "ratio to bare span", "target 0.2"], rows)
        + "\n"
    )
