"""(a) Added time per crew kickoff and per three-step flow run, against bare CrewAI in the same rounds: each
round runs every variant (interleaved) in this one process, instrumented for its own runs only."""

import contextlib
import functools
import importlib
import inspect
import itertools
import os
import statistics
import tempfile
from collections.abc import Callable
from typing import Any

from benchmarks.common import Table, interleave, noop_provider, paired, timed

VARIANTS = {  # label: "module:instrumentor" ("": none; "bare CrewAI, again" against "bare CrewAI" is the noise)
    "bare CrewAI": "",
    "bare CrewAI, again": "",
    "bare SDK spans": "benchmarks.kickoffs:BareSpans",
    "otel-crew": "otel_crew:OtelCrewInstrumentor",
    "OpenLLMetry": "opentelemetry.instrumentation.crewai:CrewAIInstrumentor",
    "OpenInference": "openinference.instrumentation.crewai:CrewAIInstrumentor",
}
PEERS = {"OpenLLMetry": "opentelemetry-instrumentation-crewai", "OpenInference": "openinference-instrumentation-crewai"}
WORKLOADS = {"kickoff": "crew kickoff", "flow": "flow run (3 steps, 3 crews)"}
POINTS = (  # (module, class, method): where otel-crew opens spans, found on the class that defines the method
    ("crewai", "Crew", "kickoff"),
    ("crewai", "Agent", "execute_task"),
    ("crewai.tools.structured_tool", "CrewStructuredTool", "invoke"),
    ("crewai.flow.flow", "Flow", "kickoff_async"),
    ("crewai.flow.flow", "Flow", "_execute_method"),
)


class BareSpans:
    """The cheapest instrumentation of the same points: a plain SDK span around each method (for flows, the
    user's only: CrewAI 1.x runs its agents as flows of its own)."""

    def instrument(self, tracer_provider: Any) -> None:
        import wrapt

        self._tracer, self._originals = tracer_provider.get_tracer("bare spans"), []
        for module, name, method in POINTS:
            owner = next(c for c in getattr(importlib.import_module(module), name).__mro__ if method in vars(c))
            self._originals.append((owner, method, vars(owner)[method]))
            wrapt.wrap_function_wrapper(owner, method, self._spanned)

    def _spanned(self, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if not inspect.iscoroutinefunction(wrapped):
            with self._tracer.start_as_current_span(wrapped.__name__):
                return wrapped(*args, **kwargs)
        if type(instance).__module__.startswith("crewai."):
            return wrapped(*args, **kwargs)

        async def awaited() -> Any:
            with self._tracer.start_as_current_span(wrapped.__name__):
                return await wrapped(*args, **kwargs)

        return awaited()

    def uninstrument(self) -> None:
        for owner, method, original in self._originals:
            setattr(owner, method, original)


def _workloads() -> dict[str, Callable[[], object]]:
    from crewai.flow.flow import Flow, listen, start

    from otel_crew.cli.demo_crews import research_crew

    crews, inputs = {name: research_crew(name) for name in ("research", "review", "write")}, {"topic": "benchmarks"}

    def step(name: str) -> Callable[..., object]:  # a flow step that kicks off the crew of that name
        def kick_off(self: object, *previous: object) -> object:
            return crews[name].kickoff(inputs=inputs)

        kick_off.__name__ = name
        return kick_off

    class ThreeSteps(Flow):  # type: ignore[type-arg]
        research, review = start()(step("research")), listen("research")(step("review"))
        write = listen("review")(step("write"))

    return {"kickoff": lambda: crews["research"].kickoff(inputs=inputs), "flow": lambda: ThreeSteps().kickoff()}


def _instrumentor(spec: str) -> Any:
    """The instrumentor named ``module:class``; None for none; False when it is not installed."""
    module, _, name = spec.partition(":")
    with contextlib.suppress(ImportError):
        return getattr(importlib.import_module(module), name)() if module else None
    return False


def measure(rounds: int, calls: int, peers: bool, progress: Callable[[str], None]) -> Table:
    os.environ.update(CREWAI_DISABLE_TELEMETRY="true", CREWAI_TRACING_ENABLED="false")
    os.environ.setdefault("CREWAI_STORAGE_DIR", tempfile.mkdtemp(prefix="otel-crew-bench-"))
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        (provider, exporter), workloads = noop_provider(), _workloads()
        chosen = {label: _instrumentor(spec) for label, spec in VARIANTS.items() if peers or label not in PEERS}
        present = [label for label, instrumentor in chosen.items() if instrumentor is not False]

        def run(instrumentor: Any, workload: Callable[[], object]) -> list[float]:  # instrumented for these runs only
            with contextlib.ExitStack() as undo:
                if instrumentor is not None:
                    instrumentor.instrument(tracer_provider=provider)
                    undo.callback(instrumentor.uninstrument)
                workload()  # a warm-up: the first run of newly wrapped code pays for the caches
                before = exporter.count
                return [timed(workload, calls), (exporter.count - before) / calls]

        runs: dict[Any, Callable[[], Any]] = {
            (label, work): functools.partial(run, chosen[label], workloads[work])
            for label, work in itertools.product(present, WORKLOADS)
        }
        answers = interleave(runs, rounds, lambda step: progress(f"kickoffs and flow runs: {step}"))
    seconds = {key: [answer[0] for answer in answered] for key, answered in answers.items()}
    rows: list[list[object]] = []
    for work, label in itertools.product(WORKLOADS, present):
        added, ratio = paired(seconds[label, work], seconds["bare CrewAI", work])
        floor = paired(seconds["bare SDK spans", work], seconds["bare CrewAI", work])[0]
        spans = max(answer[1] for answer in answers[label, work])
        row = [WORKLOADS[work], label, statistics.median(seconds[label, work]) * 1e3]
        rows.append(row + (["-"] * 4 if label == "bare CrewAI" else [added * 1e6, ratio, spans, added / floor]))
        rows[-1][-1] = "-" if label.startswith("bare CrewAI") else rows[-1][-1]
    header = ["workload", "variant", "median (ms)", "added (µs)", "ratio to bare", "spans", "added / SDK spans'"]
    return "(a) Added time per kickoff and per flow run", header, rows
