"""One kickoff-benchmark variant in a process of its own.

``python -m benchmarks.kickoff_worker VARIANT`` builds the crew on an SDK
provider with a no-op exporter (or, for ``sdk span``, a bare tracer), says
``ready``, then answers ``run N bare|instrumented`` lines: it switches the
variant's instrumentor on or off, runs N calls, and answers one JSON line with
the wall time, the process CPU time (all its threads) and the spans exported.
Bare and instrumented runs of one variant share a process, so both see the
same memory layout; each variant has its own, so no peer's leftovers
(event-bus listeners, patched classes) reach another's timings.

``--instructions N`` runs N calls under callgrind's instrumentation instead
and exits: ``benchmarks.instructions`` starts it under valgrind, which counts
only what runs between the two hooks. ``--profile N`` runs N instrumented
calls with ``benchmarks.in_place``'s clocks and answers where the time went.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from typing import Any, TextIO

from opentelemetry.util.types import AttributeValue

from benchmarks import in_place
from benchmarks.bare_spans import BareSpansInstrumentor
from benchmarks.harness import collector_paused, timed
from benchmarks.spans import CountingExporter, provider_with_noop_export

BARE_SPANS = "bare SDK spans"
SDK_SPAN = "sdk span"
SDK_SPAN_WITH_ATTRIBUTES = "sdk span, 6 attributes"
WRAPPERS_ONLY = "otel-crew, wrappers only"
# An invoke_agent span's attributes, as otel-crew sets them.
AGENT_SPAN_ATTRIBUTES: dict[str, AttributeValue] = {
    "gen_ai.operation.name": "invoke_agent",
    "gen_ai.agent.name": "Researcher",
    "gen_ai.agent.id": "0b5b8bd1-7c1e-4a3e-9a8e-3f0f3f1f2a11",
    "crewai.task.name": "research",
    "crewai.task.description": "Find facts about {topic}.",
    "crewai.task.async_execution": False,
}
PEERS = {
    "OpenLLMetry": "opentelemetry.instrumentation.crewai",
    "OpenInference (Arize)": "openinference.instrumentation.crewai",
}
CREW_VARIANTS = ("bare", BARE_SPANS, "otel-crew", *PEERS)
EXIT_NOT_INSTALLED = 3
CALLGRIND_HOOKS = "pytest_codspeed.instruments.hooks.dist_instrument_hooks"
"""pytest-codspeed's compiled module: callgrind's client requests, callable from Python."""


def command(variant: str, *options: str) -> list[str]:
    """The command line that starts this worker for ``variant``."""
    return [sys.executable, "-m", "benchmarks.kickoff_worker", variant, *options]


class InstrumentorMissingError(Exception):
    """The variant's instrumentor is not installed here."""


def _instrumentor(variant: str) -> Any:
    if variant == BARE_SPANS:
        return BareSpansInstrumentor()
    if variant in ("otel-crew", WRAPPERS_ONLY):
        from otel_crew import OtelCrewInstrumentor

        return OtelCrewInstrumentor()
    if variant in PEERS:
        try:
            return importlib.import_module(PEERS[variant]).CrewAIInstrumentor()
        except ImportError as missing:
            raise InstrumentorMissingError(variant) from missing
    return None


class Subject:
    """What one call runs: a kickoff of the crew, instrumented by the variant's
    instrumentor or not (switched between rounds), or one bare SDK span."""

    def __init__(self, variant: str) -> None:
        provider, self.exporter = provider_with_noop_export()
        self._provider = provider
        self._instrumentor: Any = None
        self._instrumented = False
        self._options = {"unclosed_roots": False, "agentops": "off"} if variant == WRAPPERS_ONLY else {}
        if variant in (SDK_SPAN, SDK_SPAN_WITH_ATTRIBUTES):
            tracer = provider.get_tracer("floor")
            attributes = AGENT_SPAN_ATTRIBUTES if variant == SDK_SPAN_WITH_ATTRIBUTES else None
            self.run: Callable[[], object] = lambda: tracer.start_span("floor", attributes=attributes).end()
            return
        from otel_crew.cli.demo_crews import research_crew

        logging.getLogger("otel_crew").setLevel(logging.ERROR)  # AgentOps is not initialised here: said once
        self._instrumentor = _instrumentor(variant)
        crew = research_crew()
        self.run = lambda: crew.kickoff(inputs={"topic": "benchmarks"})

    def instrument(self, instrumented: bool) -> None:
        if self._instrumentor is None or instrumented == self._instrumented:
            return
        if instrumented:
            self._instrumentor.instrument(tracer_provider=self._provider, **self._options)
        else:
            self._instrumentor.uninstrument()
        self._instrumented = instrumented


def serve(subject: Subject, channel: TextIO) -> None:
    """Answer ``run N bare|instrumented`` lines until stdin closes."""
    print("ready", file=channel, flush=True)
    for line in sys.stdin:
        _, calls, state = line.split()
        subject.instrument(state == "instrumented")
        subject.run()  # a warm-up after every switch: first calls pay for caches of the new code
        before = subject.exporter.count
        wall, cpu = timed(subject.run, int(calls))
        spans = subject.exporter.count - before
        print(json.dumps({"wall": wall, "cpu": cpu, "spans": spans}), file=channel, flush=True)


def count_instructions(run: Callable[[], object], calls: int) -> None:
    """As in the timed rounds, the garbage collector runs before, not during: a
    full collection that happens to fall inside the counted calls adds millions
    of instructions to whichever variant it hits."""
    hooks = importlib.import_module(CALLGRIND_HOOKS)
    with collector_paused():
        hooks.callgrind_start_instrumentation()
        for _ in range(calls):
            run()
        hooks.callgrind_stop_instrumentation()


def profile(
    run: Callable[[], object], calls: int, clocks: in_place.Clocks, exporter: CountingExporter
) -> dict[str, float]:
    """Seconds per call in each clocked part, and spans per call, over ``calls`` runs."""
    clocks.reset()
    before = exporter.count
    timed(run, calls)
    answer = {part: total / 1e9 / calls for part, total in clocks.totals.items()}
    return answer | {"spans": (exporter.count - before) / calls}


def pin_to(cpu: int) -> None:
    """Every thread of this process (CrewAI's event-bus threads too) onto one core;
    threads started later inherit it from their starter."""
    for thread_id in os.listdir("/proc/self/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that ended since the listing
            os.sched_setaffinity(int(thread_id), {cpu})


def _crewai_environment() -> str:
    """CrewAI's telemetry and tracing off (they phone home, and tracing alone adds
    a third to a kickoff), and a task-output store of this process's own on
    tmpfs, so that its disk I/O and its history stay out of the comparison."""
    os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
    storage = tempfile.mkdtemp(prefix="otel-crew-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    os.environ["CREWAI_STORAGE_DIR"] = storage
    return storage


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kickoff_worker")
    parser.add_argument("variant", choices=[*CREW_VARIANTS, WRAPPERS_ONLY, SDK_SPAN, SDK_SPAN_WITH_ATTRIBUTES])
    parser.add_argument("--instructions", type=int, metavar="N", help="run N under callgrind's instrumentation")
    parser.add_argument("--instrumented", action="store_true", help="with --instructions: instrument first")
    parser.add_argument("--profile", type=int, metavar="N", help="run N instrumented, clocked by benchmarks.in_place")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--cpu", type=int, help="pin the process to this core once it is set up")
    arguments = parser.parse_args()
    channel, sys.stdout = sys.stdout, sys.stderr  # whatever CrewAI prints stays off the answers
    storage = _crewai_environment()
    try:
        subject = Subject(arguments.variant)
        clocks = in_place.Clocks.install() if arguments.profile is not None else None
        subject.instrument(arguments.instrumented or clocks is not None)
        for _ in range(arguments.warmup):
            subject.run()
        if arguments.cpu is not None:
            pin_to(arguments.cpu)
        if arguments.instructions is not None:
            count_instructions(subject.run, arguments.instructions)
        elif clocks is not None:
            print(json.dumps(profile(subject.run, arguments.profile, clocks, subject.exporter)), file=channel)
        else:
            serve(subject, channel)
    except InstrumentorMissingError:
        return EXIT_NOT_INSTALLED
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
