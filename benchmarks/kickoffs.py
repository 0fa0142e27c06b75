"""(a) Added time per crew kickoff and per flow run, each variant instrumented for its own runs only."""

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

import wrapt

from benchmarks import Progress, Table, instrumented, interleave, noop_provider, paired, timed_with_spans

VARIANTS = {  # label: "module:instrumentor" ("": none; "bare CrewAI, again" against "bare CrewAI" is the noise)
    "bare CrewAI": "",
    "bare CrewAI, again": "",
    "bare SDK spans": "benchmarks.kickoffs:BareSpans",
    "otel-crew": "otel_crew:OtelCrewInstrumentor",
    "OpenLLMetry": "opentelemetry.instrumentation.crewai:CrewAIInstrumentor",
    "OpenInference": "openinference.instrumentation.crewai:CrewAIInstrumentor",
}
PEERS = {"OpenLLMetry": "opentelemetry-instrumentation-crewai", "OpenInference": "openinference-instrumentation-crewai"}
POINTS = (  # (module, class, method): where otel-crew opens spans, found on the class that defines the method
    ("crewai", "Crew", "kickoff"),
    ("crewai", "Agent", "execute_task"),
    ("crewai.tools.structured_tool", "CrewStructuredTool", "invoke"),
    ("crewai.flow.flow", "Flow", "kickoff_async"),
    ("crewai.flow.flow", "Flow", "_execute_method"),
)


class BareSpans:
    """The cheapest instrumentation of the same points: a plain SDK span around each (of flows, the user's)."""

    def instrument(self, tracer_provider: Any) -> None:
        self._tracer, self._originals = tracer_provider.get_tracer("bare spans"), []
        for module, name, method in POINTS:
            owner = next(c for c in getattr(importlib.import_module(module), name).__mro__ if method in vars(c))
            self._originals.append((owner, method, vars(owner)[method]))
            wrapt.wrap_function_wrapper(owner, method, self._spanned)

    def _spanned(self, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if not inspect.iscoroutinefunction(wrapped):
            with self._tracer.start_as_current_span(wrapped.__name__):
                return wrapped(*args, **kwargs)
        if type(instance).__module__.startswith("crewai."):  # CrewAI 1.x runs its agents as flows of its own
            return wrapped(*args, **kwargs)
        return self._tracer.start_as_current_span(wrapped.__name__)(wrapped)(*args, **kwargs)  # async, spanned

    def uninstrument(self) -> None:
        for owner, method, original in self._originals:
            setattr(owner, method, original)


def _instrumentors() -> dict[str, Any]:
    chosen = {}
    for label, spec in VARIANTS.items():
        module, _, name = spec.partition(":")
        with contextlib.suppress(ImportError):
            chosen[label] = getattr(importlib.import_module(module), name)() if module else None
    return chosen


def _run(instrumentor: Any, workload: Callable[[], object], calls: int, exporter: Any, provider: Any) -> list[float]:
    """Seconds per call and spans per call of ``workload``, instrumented by ``instrumentor`` for these calls."""
    with instrumented([instrumentor], provider):
        return timed_with_spans(workload, calls, exporter)


def measure(rounds: int, calls: int, progress: Progress) -> Table:
    os.environ.update(CREWAI_DISABLE_TELEMETRY="true", CREWAI_TRACING_ENABLED="false")
    os.environ.setdefault("CREWAI_STORAGE_DIR", tempfile.mkdtemp(prefix="otel-crew-bench-"))
    from otel_crew.cli.demo import report_flow
    from otel_crew.cli.demo_crews import research_crew

    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        crew, (provider, exporter) = research_crew(), noop_provider()
        workloads = {"crew kickoff": lambda: crew.kickoff(inputs={"topic": "bench"})}
        workloads["flow run (2 steps, 2 crews)"] = lambda: report_flow().kickoff()
        chosen = _instrumentors()  # each installed variant's instrumentor (None: none)
        runs = {
            (label, work): functools.partial(_run, chosen[label], workloads[work], calls, exporter, provider)
            for label, work in itertools.product(chosen, workloads)
        }
        answers = interleave(runs, rounds, lambda step: progress(f"kickoffs and flow runs: {step}"))
    rows: list[list[object]] = []
    seconds = {key: [answer[0] for answer in answered] for key, answered in answers.items()}
    for work, label in itertools.product(workloads, chosen):
        times, bare, spanned = (seconds[key, work] for key in (label, "bare CrewAI", "bare SDK spans"))
        (added, ratio), spans = paired(times, bare), max(answer[1] for answer in answers[label, work])
        floor = "-" if label.startswith("bare CrewAI") else added / paired(spanned, bare)[0]
        rows.append([work, label, statistics.median(times) * 1e3, added * 1e6, ratio, spans, floor])
    header = ["workload", "variant", "median (ms)", "added (µs)", "ratio to bare", "spans", "added / SDK spans'"]
    return "(a) Added time per kickoff and per flow run", header, rows
