"""Kickoff overhead: the same crew bare, with otel-crew, and with the other
CrewAI instrumentors, against the SDK's own cost of one span.

Time: each instrumentor gets a worker process of its own
(``benchmarks.kickoff_worker``), all pinned to one core. In every round each
worker runs a few kickoffs bare and a few instrumented (order alternating),
so every difference is paired: same process, same moment. The ``bare``
worker compares bare with bare: the noise any difference is read against.

Instructions: the same crew under callgrind (``benchmarks.instructions``), a
count that no other load moves.

In place: where the added time goes inside a kickoff (``benchmarks.in_place``),
for otel-crew and for bare SDK spans made at the same points, the cheapest
instrumentation that records those spans.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from benchmarks import in_place, instructions, kickoff_worker
from benchmarks.harness import Blocks, ms, table, us, verdict
from benchmarks.kickoff_worker import (
    BARE_SPANS,
    CREW_VARIANTS,
    EXIT_NOT_INSTALLED,
    PEERS,
    SDK_SPAN,
    SDK_SPAN_WITH_ATTRIBUTES,
    WRAPPERS_ONLY,
)
from benchmarks.spans import provider_with_noop_export

BARE = "bare"
SECOND_BARE = "bare, second process"
STATES = ("bare", "instrumented")
FLOOR_CALLS = 2000
INSTRUCTION_FLOOR_CALLS = 1000
COLD_SPAN_CALLS = 200

TIME_COLUMNS = [
    "variant",
    "median kickoff, bare",
    "instrumented",
    "added (wall)",
    "IQR of added",
    "added (CPU)",
    "ratio to bare",
    "spans / kickoff",
    "added / (spans x floor)",
]
INSTRUCTION_COLUMNS = ["variant", "instructions / kickoff", "added", "ratio to bare", "added / (spans x floor)"]
BREAKDOWN_COLUMNS = ["part of otel-crew's added instructions", "per kickoff", "of the bare kickoff"]
IN_PLACE_COLUMNS = ["inside a kickoff", "otel-crew, per kickoff", "otel-crew, per span", f"{BARE_SPANS}, per span"]


KickoffTimes = dict[str, Blocks]


@dataclass
class KickoffResult:
    wall: KickoffTimes  # variant -> per-round seconds per call, bare and instrumented
    cpu: KickoffTimes
    spans_per_kickoff: dict[str, float]  # instrumented
    instructions: Mapping[str, float]
    instructions_unavailable: str | None
    missing_peers: list[str]
    in_place: Mapping[str, Mapping[str, float]]  # variant -> part -> seconds per kickoff (and "spans")
    span_hot_and_cold: tuple[float, float]  # one SDK span: in a tight loop, after evicting the caches


def _pinned_worker(variant: str, cpu: int | None, *options: str) -> list[str]:
    return kickoff_worker.command(variant, *([] if cpu is None else ["--cpu", str(cpu)]), *options)


class _Worker:
    """One variant's process, answering ``run N`` with its timings."""

    def __init__(self, variant: str, cpu: int | None) -> None:
        self.variant = variant
        # Its own log, so that a failure's traceback is not lost among the others' output; closed in close().
        self._log: IO[str] = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self._process = subprocess.Popen(
            _pinned_worker(variant, cpu),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )

    def log_tail(self) -> str:
        self._log.seek(0)
        return f"--- {self.variant} worker ---\n{self._log.read()[-3000:]}"

    def ready(self) -> bool:
        """True once set up; False when its instrumentor is not installed."""
        assert self._process.stdout is not None
        if self._process.stdout.readline().strip() == "ready":
            return True
        code = self._process.wait()
        if code == EXIT_NOT_INSTALLED:
            return False
        raise RuntimeError(f"the {self.variant!r} benchmark worker failed with exit code {code}\n{self.log_tail()}")

    def run(self, calls: int, state: str) -> dict[str, float]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(f"run {calls} {state}\n")
        self._process.stdin.flush()
        answer: dict[str, float] = json.loads(self._process.stdout.readline())
        return answer

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=60)
        self._log.close()


def _benchmark_cpu() -> int | None:
    """The core every worker is pinned to: the last one this process may use."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    return max(os.sched_getaffinity(0))


def _rounds(workers: Sequence[_Worker], rounds: int, calls: int) -> tuple[KickoffTimes, KickoffTimes, dict[str, float]]:
    wall = {worker.variant: Blocks({state: [] for state in STATES}) for worker in workers}
    cpu = {worker.variant: Blocks({state: [] for state in STATES}) for worker in workers}
    spans = dict.fromkeys(wall, 0.0)
    for index in range(rounds):
        shift = index % len(workers)
        states = STATES if index % 2 == 0 else STATES[::-1]
        for worker in [*workers[shift:], *workers[:shift]]:
            count = FLOOR_CALLS if worker.variant == SDK_SPAN else calls
            for state in states:
                answer = worker.run(count, state)
                wall[worker.variant].means[state].append(answer["wall"] / count)
                cpu[worker.variant].means[state].append(answer["cpu"] / count)
                if state == "instrumented":
                    spans[worker.variant] += answer["spans"] / (count * rounds)
    return wall, cpu, spans


def _timed(rounds: int, calls: int) -> tuple[KickoffTimes, KickoffTimes, dict[str, float], list[str]]:
    cpu = _benchmark_cpu()
    workers = [_Worker(variant, cpu) for variant in [*CREW_VARIANTS, SDK_SPAN]]
    try:
        present = [worker for worker in workers if worker.ready()]
        wall, cpu_time, spans = _rounds(present, rounds, calls)
    except (OSError, ValueError):  # a worker died mid-run: its answer was cut or missing
        print(*(worker.log_tail() for worker in workers), sep="\n", file=sys.stderr)
        raise
    finally:
        for worker in workers:
            worker.close()
    missing = [worker.variant for worker in workers if worker not in present]
    return wall, cpu_time, spans, missing


def _in_place(profiled_kickoffs: int) -> dict[str, dict[str, float]]:
    """Clocked kickoffs of otel-crew and of bare SDK spans, one pinned process each."""
    profiles = {}
    for variant in (BARE_SPANS, "otel-crew"):
        command = _pinned_worker(variant, _benchmark_cpu(), "--profile", str(profiled_kickoffs))
        finished = subprocess.run(command, capture_output=True, text=True, check=False)
        if finished.returncode != 0:
            raise RuntimeError(f"the {variant!r} profile failed:\n{finished.stderr[-2000:]}")
        profiles[variant] = json.loads(finished.stdout.splitlines()[-1])
    return profiles


def measure(rounds: int, calls: int, counted_kickoffs: int, profiled_kickoffs: int) -> KickoffResult:
    wall, cpu, spans, missing = _timed(rounds, calls)
    profiles = _in_place(profiled_kickoffs)
    provider, _ = provider_with_noop_export()
    hot_and_cold = in_place.cold_span(provider.get_tracer("floor"), COLD_SPAN_CALLS)
    unavailable = instructions.available()
    counts: Mapping[str, float] = {}
    if unavailable is None:
        jobs = {SECOND_BARE: instructions.Job(BARE, False, counted_kickoffs)}
        jobs |= {name: instructions.Job(name, True, counted_kickoffs) for name in CREW_VARIANTS if name not in missing}
        jobs[WRAPPERS_ONLY] = instructions.Job(WRAPPERS_ONLY, True, counted_kickoffs)
        for floor in (SDK_SPAN, SDK_SPAN_WITH_ATTRIBUTES):
            jobs[floor] = instructions.Job(floor, False, INSTRUCTION_FLOOR_CALLS, warmup=200)
        counts = instructions.per_call(jobs)
    return KickoffResult(wall, cpu, spans, counts, unavailable, missing, profiles, hot_and_cold)


# -- the report ---------------------------------------------------------------


def _floor_multiple(added: float, extra_spans: float, floor: float) -> float:
    return added / (extra_spans * floor) if extra_spans > 0 else float("nan")


def _time_rows(result: KickoffResult) -> list[list[str]]:
    floor = result.wall[SDK_SPAN].median("bare")
    rows = []
    for name in CREW_VARIANTS:
        if name not in result.wall:
            continue
        wall, spans = result.wall[name], result.spans_per_kickoff[name]
        added = wall.paired_difference("instrumented", "bare")
        rows.append(
            [
                "bare, against itself" if name == BARE else name,
                ms(wall.median("bare")),
                ms(wall.median("instrumented")),
                us(added),
                us(wall.paired_spread("instrumented", "bare")),
                us(result.cpu[name].paired_difference("instrumented", "bare")),
                f"{wall.paired_ratio('instrumented', 'bare'):.3f}",
                f"{spans:.1f}",
                "-" if name == BARE else f"{_floor_multiple(added, spans, floor):.2f}",
            ]
        )
    return rows


def _instruction_rows(result: KickoffResult) -> list[list[str]]:
    counts, floor = result.instructions, result.instructions[SDK_SPAN]
    bare = counts[BARE]
    rows = []
    for name in [SECOND_BARE, *CREW_VARIANTS[1:]]:
        if name not in counts:
            continue
        added = counts[name] - bare
        spans = result.spans_per_kickoff.get(name, 0.0)
        multiple = "-" if name == SECOND_BARE else f"{_floor_multiple(added, spans, floor):.2f}"
        ratio = f"{counts[name] / bare:.4f}"
        rows.append([name, f"{counts[name] / 1e6:.2f} M", f"{added / 1e3:+.0f} k", ratio, multiple])
    return rows


def _breakdown_rows(result: KickoffResult) -> list[list[str]]:
    bare = result.instructions[BARE]
    return [[label, f"{value / 1e3:+.0f} k", f"{value / bare:.2%}"] for label, value in _breakdown_parts(result)]


def _breakdown_parts(result: KickoffResult) -> list[tuple[str, float]]:
    """otel-crew's added instructions split into the SDK's work for its spans
    (each counted as a span with an invoke_agent span's attributes), the
    wrappers' own work, and the two processors'."""
    counts = result.instructions
    sdk = result.spans_per_kickoff["otel-crew"] * counts[SDK_SPAN_WITH_ATTRIBUTES]
    wrappers = counts[WRAPPERS_ONLY] - counts[BARE] - sdk
    processors = counts["otel-crew"] - counts[WRAPPERS_ONLY]
    return [("the SDK recording its spans", sdk), ("the wrappers", wrappers), ("the two processors", processors)]


def _verdicts(
    added: Mapping[str, float], base: float, floor: float, spans: Mapping[str, float]
) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for one way of reading 'added cost': by time or by
    instructions. A cost at or below zero is noise, so it meets nothing (None)."""
    ours, our_spans = added["otel-crew"], spans["otel-crew"]
    multiple = _floor_multiple(ours, our_spans, floor)
    verdicts: list[tuple[str, str, bool | None]] = [
        ("otel-crew adds at most 1% to the bare kickoff", f"{ours / base:.2%}", ours / base <= 0.01),
        ("otel-crew costs at most 3x the SDK floor for its spans", f"{multiple:.2f}x", multiple <= 3),
    ]
    bare_spans = added.get(BARE_SPANS, 0.0)
    measurable = bare_spans > 0 and spans.get(BARE_SPANS, 0.0) > 0
    in_place_multiple = _floor_multiple(ours, our_spans, bare_spans / spans[BARE_SPANS]) if measurable else math.nan
    verdicts.append(
        (
            "... and at most 3x the floor in place (bare SDK spans at the same points)",
            f"{in_place_multiple:.2f}x",
            in_place_multiple <= 3 if measurable else None,
        )
    )
    for peer in PEERS:
        if peer in added:
            share = ours / added[peer] if added[peer] > 0 else float("nan")
            met = share <= 0.2 if added[peer] > 0 else None
            verdicts.append((f"otel-crew adds at most 1/5 of {peer}'s added cost", f"{share:.2f}", met))
    return [(label, shown, met if ours > 0 else None) for label, shown, met in verdicts]


def _targets(result: KickoffResult) -> list[list[str]]:
    wall, counts = result.wall, result.instructions
    compared = [name for name in CREW_VARIANTS[1:] if name in wall]
    readings = [
        _verdicts(
            {name: wall[name].paired_difference("instrumented", "bare") for name in compared},
            wall["otel-crew"].median("bare"),
            wall[SDK_SPAN].median("bare"),
            result.spans_per_kickoff,
        )
    ]
    if counts:
        added = {name: counts[name] - counts[BARE] for name in compared if name in counts}
        readings.append(_verdicts(added, counts[BARE], counts[SDK_SPAN], result.spans_per_kickoff))
    return [[row[0][0], *(f"{shown} ({verdict(ok)})" for _, shown, ok in row)] for row in zip(*readings, strict=True)]


def _resolution(result: KickoffResult) -> float:
    """The smallest time difference this run can tell from noise: twice the
    standard error of a median over the rounds (from the bare-against-itself IQR)."""
    bare = result.wall[BARE]
    rounds = len(bare.means["bare"])
    spread = bare.paired_spread("instrumented", "bare")
    return 2 * 1.253 * (spread / 1.349) / math.sqrt(rounds)


def _instruction_reading(result: KickoffResult) -> list[str]:
    """Where otel-crew's instructions go, and why a target they miss cannot be met."""
    counts = result.instructions
    lines: list[str] = []
    bare = counts[BARE]
    sdk, wrappers, processors = (value for _, value in _breakdown_parts(result))
    peer_span_costs = ", ".join(
        f"{peer} {(counts[peer] - bare) / result.spans_per_kickoff[peer] / 1e3:.0f} k"
        for peer in PEERS
        if peer in counts and result.spans_per_kickoff.get(peer)
    )
    ours_per_span = (counts["otel-crew"] - bare) / result.spans_per_kickoff["otel-crew"]
    budget = (
        "leaving no room in a 1% budget for any instrumentation that records these spans"
        if sdk / bare >= 0.01
        else f"leaving {0.01 - sdk / bare:.2%} of a 1% budget for the instrumentation's own code"
    )
    lines.append(
        f"- Instructions: the SDK's own work to record otel-crew's spans is {sdk / bare:.2%} of the bare kickoff,"
        f"\n  {budget};\n  otel-crew's own code adds wrappers {wrappers / bare:.2%} and processors"
        f" {processors / bare:.2%}. Per span, otel-crew adds {ours_per_span / 1e3:.0f} k instructions"
        f" in all; the peers {peer_span_costs}."
    )
    spans = result.spans_per_kickoff["otel-crew"]
    per_span_sdk = counts[SDK_SPAN_WITH_ATTRIBUTES]
    for peer in PEERS:
        share = (counts[peer] - bare) / 5 if peer in counts else 0.0
        if 0 < share < sdk:
            lines.append(
                f"- A fifth of {peer}'s added instructions is {share / 1e3:.0f} k per kickoff,"
                f" {share / spans / 1e3:.0f} k for each of otel-crew's\n  {spans:.0f} spans: less than the SDK"
                f" alone spends recording one such span ({per_span_sdk / 1e3:.0f} k)."
            )
    return lines


def _time_reading(result: KickoffResult) -> list[str]:
    """Why a time target is out of reach: what bare SDK spans at otel-crew's points cost."""
    wall, spans = result.wall, result.spans_per_kickoff
    base, floor = wall["otel-crew"].median("bare"), wall[SDK_SPAN].median("bare")
    bare_added = wall[BARE_SPANS].paired_difference("instrumented", "bare") * spans["otel-crew"] / spans[BARE_SPANS]
    profile = result.in_place[BARE_SPANS]
    in_place_span = profile[in_place.SDK] / profile["spans"]
    clocked = in_place_span * spans["otel-crew"]
    lines = [
        f"- In place the SDK spends {us(in_place_span)} on one bare span ({in_place_span / floor:.0f}x its"
        f" tight-loop cost): between two spans\n  CrewAI runs milliseconds of Python that push the SDK's code"
        f" and data out of the caches.\n  Bare SDK spans at otel-crew's {spans['otel-crew']:.0f} points add"
        f" {us(bare_added)} to a kickoff ({bare_added / base:.2%}; {bare_added / (spans['otel-crew'] * floor):.1f}x"
        f" the tight-loop floor);\n  clocked in place, the SDK's start and end of them alone take {us(clocked)}"
        f" ({clocked / base:.2%})."
    ]
    if bare_added / base > 0.01:
        lines.append("- So by time no instrumentation that records these spans through the SDK adds under 1% here.")
    if bare_added > 3 * spans["otel-crew"] * floor:
        lines.append("- Nor does any stay within 3x the tight-loop floor: the spans alone cost more in place.")
    for peer in PEERS:
        peer_added = wall[peer].paired_difference("instrumented", "bare") if peer in wall else 0.0
        if 0 < peer_added / 5 < bare_added:
            lines.append(
                f"- A fifth of {peer}'s added time ({us(peer_added / 5)}) is less than the bare spans alone"
                f" ({us(bare_added)})."
            )
    return lines


def _reading(result: KickoffResult) -> str:
    """What the numbers say about the targets, in words, from this run's numbers."""
    lines = [
        f"- Time: differences under about {us(_resolution(result))} per kickoff are noise in this run (two standard"
        " errors of\n  the median, from the bare-against-itself spread); 1% of the bare kickoff is"
        f" {us(result.wall['otel-crew'].median('bare') / 100)}.",
        *_time_reading(result),
    ]
    if result.instructions:
        lines += _instruction_reading(result)
    return "\n".join(lines) + "\n"


def _in_place_rows(result: KickoffResult) -> list[list[str]]:
    ours, bare = result.in_place["otel-crew"], result.in_place[BARE_SPANS]
    parts: list[tuple[str, float, float | None]] = [
        (
            "the SDK starting and ending spans (sampler, ids, attributes, the exporting processor)",
            ours[in_place.SDK] - ours[in_place.PROCESSORS],
            bare[in_place.SDK],
        ),
        ("otel-crew's two processors", ours[in_place.PROCESSORS], None),
        (
            "otel-crew's wrappers, their own code (attributes, context, status)",
            ours[in_place.WRAPPERS] - ours[in_place.SDK],
            None,
        ),
        ("all of it", ours[in_place.WRAPPERS], bare[in_place.SDK]),
    ]
    return [
        [label, us(value), us(value / ours["spans"]), "-" if same is None else us(same / bare["spans"])]
        for label, value, same in parts
    ]


def _in_place_section(result: KickoffResult) -> str:
    hot, cold = result.span_hot_and_cold
    bare = result.in_place[BARE_SPANS]
    return (
        "Where the added time goes inside a kickoff: clocks around the SDK's span start and end, around\n"
        "otel-crew's processors, and around its wrappers (their own time: the CrewAI method each wraps is\n"
        "subtracted), over instrumented kickoffs in one pinned process per variant. `bare SDK spans` opens a\n"
        "plain span (a name, no attributes) wherever otel-crew opens one: the cheapest instrumentation that\n"
        "records these spans. The clocks' own cost is included, so every part is an upper bound.\n"
        f"One SDK span costs **{us(hot)}** in a tight loop, **{us(cold)}** right after 64 MB were written (the\n"
        f"caches evicted), and **{us(bare[in_place.SDK] / bare['spans'])}** in place.\n\n"
        + table(IN_PLACE_COLUMNS, _in_place_rows(result))
        + "\n"
    )


def _instruction_section(result: KickoffResult) -> str:
    counts = result.instructions
    return (
        "Instructions executed per kickoff, counted by callgrind (all threads; one process per row, bare or\n"
        "instrumented from the start; the garbage collector off while counting, as in the timed rounds): no\n"
        "other load moves them. `bare, second process` against `bare` shows what two processes of the same\n"
        "code differ by. One bare SDK span executes "
        f"**{counts[SDK_SPAN] / 1e3:.0f} k**\ninstructions; the bare kickoff **{counts[BARE] / 1e6:.1f} M**.\n\n"
        + table(INSTRUCTION_COLUMNS, _instruction_rows(result))
        + "\n\nWhere otel-crew's instructions go: the same count with its processors off, and one SDK span\n"
        f"with the six attributes of an invoke_agent span ({counts[SDK_SPAN_WITH_ATTRIBUTES] / 1e3:.0f} k) for each "
        "of its spans.\n\n" + table(BREAKDOWN_COLUMNS, _breakdown_rows(result)) + "\n"
    )


def report(result: KickoffResult) -> str:
    floor = result.wall[SDK_SPAN].median("bare")
    parts = [
        "## Kickoff overhead\n\n"
        "The same crew (2 agents, 2 tasks, one tool call, the zero-latency local model) on an SDK provider with a\n"
        "no-op exporter. Each instrumentor runs in a process of its own, all pinned to one core (CrewAI's event\n"
        "bus hands work between threads; across cores that alone made kickoffs vary by tens of percent). In every\n"
        "round each process runs a few kickoffs bare and a few instrumented (order alternating), so each\n"
        "difference is paired within one process and one moment: across processes, kickoffs of the same code\n"
        "settled up to ~2 ms apart. Added time and ratio are medians over rounds, next to the interquartile range\n"
        "of the differences; `bare, against itself` compares bare with bare. otel-crew runs with both processors\n"
        "installed (AgentOps not initialised, so no session is sent: AgentOps' own cost is AgentOps'). One bare\n"
        f"SDK span costs **{us(floor)}** in this run (the floor); the last column is the added time divided by\n"
        "(spans x floor).\n\n" + table(TIME_COLUMNS, _time_rows(result)) + "\n\n"
    ]
    parts.append(_in_place_section(result) + "\n")
    if result.instructions:
        parts.append(_instruction_section(result))
    else:
        parts.append(f"Instructions were not counted: {result.instructions_unavailable}.\n")
    header = ["target", "by time", "by instructions"] if result.instructions else ["target", "by time"]
    parts.append("\n" + table(header, _targets(result)) + "\n\n" + _reading(result))
    if result.missing_peers:
        parts.append(f"\nNot installed, so not compared: {', '.join(result.missing_peers)}.\n")
    return "".join(parts)
