"""Kickoff overhead: the same crew bare, with otel-crew, and with the other
CrewAI instrumentors, against the SDK's own cost of one span."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from benchmarks.harness import Blocks, Variant, interleave, ms, table, us, verdict
from benchmarks.spans import CountingExporter, provider_with_noop_export

PEERS = {
    "OpenLLMetry": "opentelemetry.instrumentation.crewai",
    "OpenInference (Arize)": "openinference.instrumentation.crewai",
}


KICKOFF_COLUMNS = [
    "variant",
    "median kickoff",
    "added",
    "IQR of added",
    "ratio to bare",
    "spans / kickoff",
    "added / (spans x floor)",
]


@dataclass
class KickoffResult:
    blocks: Blocks
    spans_per_kickoff: dict[str, float]
    sdk_span: float
    missing_peers: list[str]


def _instrumented(
    name: str,
    provider: TracerProvider,
    exporter: CountingExporter,
    spans: dict[str, list[int]],
    run: Any,
    instrumentor: Any,
) -> Variant:
    def setup() -> None:
        spans.setdefault(name, []).append(-exporter.count)
        if instrumentor is not None:
            instrumentor.instrument(tracer_provider=provider)

    def teardown() -> None:
        spans[name][-1] += exporter.count
        if instrumentor is not None:
            instrumentor.uninstrument()

    return Variant(name, run, setup, teardown)


def measure(blocks: int, calls: int) -> KickoffResult:
    from otel_crew import OtelCrewInstrumentor
    from otel_crew.demo_crews import research_crew

    logging.getLogger("otel_crew").setLevel(logging.ERROR)  # AgentOps is not initialised here: said once
    provider, exporter = provider_with_noop_export()
    crew = research_crew()

    def kickoff() -> object:
        return crew.kickoff(inputs={"topic": "benchmarks"})

    instrumentors: dict[str, Any] = {"bare": None, "otel-crew": OtelCrewInstrumentor()}
    missing = []
    for label, module in PEERS.items():
        try:
            instrumentors[label] = importlib.import_module(module).CrewAIInstrumentor()
        except ImportError:
            missing.append(label)
    counted: dict[str, list[int]] = {}
    variants = [_instrumented(name, provider, exporter, counted, kickoff, tool) for name, tool in instrumentors.items()]
    result = interleave(variants, blocks=blocks, calls=calls)
    spans = {name: sum(deltas) / (len(deltas) * (calls + 1)) for name, deltas in counted.items()}
    tracer = provider.get_tracer("floor")
    floor = interleave([Variant("sdk span", lambda: tracer.start_span("floor").end())], blocks=blocks, calls=2000)
    return KickoffResult(result, spans, floor.median("sdk span"), missing)


def report(result: KickoffResult) -> str:
    blocks, floor = result.blocks, result.sdk_span
    bare = blocks.median("bare")
    rows = [["bare", ms(bare), "-", "-", "1.000", f"{result.spans_per_kickoff['bare']:.1f}", "-"]]
    added: dict[str, float] = {}
    for name in blocks.means:
        if name == "bare":
            continue
        added[name] = blocks.paired_difference(name, "bare")
        spans = result.spans_per_kickoff[name] - result.spans_per_kickoff["bare"]
        per_floor = added[name] / (spans * floor) if spans > 0 else float("nan")
        rows.append(
            [
                name,
                ms(blocks.median(name)),
                us(added[name]),
                us(blocks.paired_spread(name, "bare")),
                f"{blocks.paired_ratio(name, 'bare'):.3f}",
                f"{result.spans_per_kickoff[name]:.1f}",
                f"{per_floor:.2f}",
            ]
        )
    ours = added["otel-crew"]
    our_spans = result.spans_per_kickoff["otel-crew"] - result.spans_per_kickoff["bare"]
    targets = [
        ["otel-crew adds at most 1% to the bare kickoff", f"{ours / bare:.2%}", verdict(ours / bare <= 0.01)],
        [
            "otel-crew costs at most 3x the SDK floor for its spans",
            f"{ours / (our_spans * floor):.2f}x",
            verdict(ours / (our_spans * floor) <= 3),
        ],
    ]
    for peer in PEERS:
        if peer in added:
            share = ours / added[peer] if added[peer] > 0 else float("nan")
            targets.append(
                [f"otel-crew adds at most 1/5 of {peer}'s added time", f"{share:.2f}", verdict(share <= 0.2)]
            )
    note = f"\nNot installed, so not compared: {', '.join(result.missing_peers)}.\n" if result.missing_peers else ""
    return (
        "## Kickoff overhead\n\n"
        "The same crew (2 agents, 2 tasks, one tool call, the zero-latency local model) on an SDK provider with a\n"
        "no-op exporter. Added time and ratio are medians of per-block differences against the bare crew in the\n"
        f"same block. One bare SDK span costs **{us(floor)}** in this run (the floor); the last column is the added\n"
        "time divided by (extra spans x floor). otel-crew runs with both processors installed (AgentOps not\n"
        "initialised, so no session is sent: AgentOps' own cost is AgentOps').\n\n"
        + table(
            KICKOFF_COLUMNS,
            rows,
        )
        + "\n\n"
        + table(["target", "measured", ""], targets)
        + "\n"
        + note
    )
