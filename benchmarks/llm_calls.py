"""(d) Added time per LLM call: CrewAI's own ``LLM`` on a loopback OpenAI-compatible server (the tests' one),
plain, under otel-crew, under the official GenAI OpenAI instrumentation, and under both."""

import functools
import importlib
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import Progress, Table, instrumented, interleave, noop_provider, paired, timed_with_spans

OTEL_CREW = "otel_crew:OtelCrewInstrumentor"
GENAI_OPENAI = "opentelemetry.instrumentation.genai.openai:OpenAIInstrumentor"
VARIANTS = {  # label: instrumentors ("bare, again" against "bare" is the noise)
    "bare": (),
    "bare, again": (),
    "otel-crew": (OTEL_CREW,),
    "GenAI OpenAI instrumentation": (GENAI_OPENAI,),
    "both (one span per call)": (OTEL_CREW, GENAI_OPENAI),
}
PACKAGE = "opentelemetry-instrumentation-genai-openai"


def _instrumentors(specs: tuple[str, ...]) -> list[Any] | None:
    """One instance of each instrumentor, or None when one is not installed."""
    chosen = []
    for spec in specs:
        module, _, name = spec.partition(":")
        try:
            chosen.append(getattr(importlib.import_module(module), name)())
        except ImportError:
            return None
    return chosen


def _loopback_server() -> Any:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the tests' LLM server
    from llm_server import LLMServer

    return LLMServer().start()


def _run(instrumentors: list[Any], base_url: str, calls: int, counter: Any, provider: Any) -> list[float]:
    """Seconds per call and spans per call, instrumented by ``instrumentors`` for these calls only. The model is
    made after instrumenting, as an application's would be: the OpenAI SDK binds ``create`` into its raw-response
    wrapper on first use, so a client used before a provider instrumentation never reaches it."""
    from crewai import LLM

    with instrumented(instrumentors, provider):
        llm = LLM(model="openai/gpt-4o-mini", base_url=base_url, api_key="sk-bench-loopback")

        def call() -> object:
            return llm.call([{"role": "user", "content": "hi"}])

        return timed_with_spans(call, calls, counter)


def measure(rounds: int, calls: int, progress: Progress) -> Table:
    os.environ.update(CREWAI_DISABLE_TELEMETRY="true", CREWAI_TRACING_ENABLED="false")
    os.environ.setdefault("CREWAI_STORAGE_DIR", tempfile.mkdtemp(prefix="otel-crew-bench-"))
    server = _loopback_server()
    try:
        provider, counter = noop_provider()
        chosen = {label: found for label, specs in VARIANTS.items() if (found := _instrumentors(specs)) is not None}
        runs = {
            label: functools.partial(_run, found, server.openai_url, calls, counter, provider)
            for label, found in chosen.items()
        }
        answers = interleave(runs, rounds, lambda step: progress(f"LLM calls: {step}"))
    finally:
        server.stop()
    bare = [answer[0] for answer in answers["bare"]]
    rows: list[list[object]] = []
    for label in chosen:
        times = [answer[0] for answer in answers[label]]
        added, ratio = paired(times, bare)
        spans = max(answer[1] for answer in answers[label])
        rows.append([label, statistics.median(times) * 1e3, added * 1e6, ratio, spans])
    header = ["variant", "median (ms)", "added (µs)", "ratio to bare", "spans per call"]
    return "(d) Added time per LLM call", header, rows
