"""``otel-crew demo``: run the demo pipeline offline, print its trace tree and
one summary line; export over OTLP when the variables name an endpoint that
really is an OTLP receiver, and say so in one plain line when it is not."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from packaging.version import Version
from rich.console import Console

from otel_crew.agentops_sessions.processor import AgentOpsSessionProcessor, SessionReport
from otel_crew.cli.exit_codes import EXIT_FAILED, EXIT_MISSING, EXIT_OK, EXIT_USAGE
from otel_crew.config import ConfigError, ExportSettings, OutageReporting, export_settings
from otel_crew.install import pip_install
from otel_crew.semconv import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    OPERATION_CHAT,
)


def _quiet_crewai() -> None:
    """The demo runs offline: CrewAI's phone-home and its tracing prompt are off.

    CrewAI before 0.105 honours only OTEL_SDK_DISABLED, which also silences
    every SDK provider built after it is set: call this once the demo's own
    provider exists (CrewAI builds its telemetry with each crew, later).
    """
    os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
    if Version(version("crewai")) < Version("0.105"):
        os.environ.setdefault("OTEL_SDK_DISABLED", "true")


def _agentops_wanted() -> bool:
    """AgentOps runs in the demo when it is installed and has a key."""
    return bool(os.environ.get("AGENTOPS_API_KEY")) and importlib.util.find_spec("agentops") is not None


@contextlib.contextmanager
def _agentops_hidden_from_crewai(hide: bool) -> Iterator[None]:
    """CrewAI 0.95 to 0.164 start (0.105+) and end AgentOps sessions by
    themselves whenever ``agentops`` imports; the demo without AgentOps keeps
    them from it, for its own crews in this process only."""
    if not hide or "agentops" in sys.modules:
        yield
        return
    sys.modules["agentops"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if sys.modules.get("agentops", ...) is None:
            del sys.modules["agentops"]


@dataclass
class _Export:
    exporter: OutageReporting | None
    note: str  # the summary's clause on where the spans went


def _export(settings: ExportSettings) -> _Export:
    if not (settings.exports_otlp and settings.endpoint_named):
        return _Export(None, "spans shown here only (set OTEL_EXPORTER_OTLP_ENDPOINT to send them to a collector)")
    from otel_crew.cli.collector_hint import start_collector
    from otel_crew.cli.otlp_probe import probe
    from otel_crew.config import otlp_exporter

    target = f"{settings.endpoint} ({settings.protocol})"
    result = probe(settings)
    if not result.answers:
        hint = start_collector() if not result.listening else "point OTEL_EXPORTER_OTLP_ENDPOINT at a collector"
        return _Export(None, f"spans not exported: {settings.endpoint} {result.detail}; {hint}")
    return _Export(otlp_exporter(settings), f"spans exported to {target}")


def _agentops_start() -> bool:
    """agentops.init() for the demo's sessions; True when AgentOps really runs."""
    import agentops

    agentops.init(auto_start_session=False)
    return bool(agentops.get_client().initialized)


def _session_notes(reports: list[SessionReport]) -> dict[int, str]:
    """The root line's note per root span id: its end state, or that AgentOps did not take it."""
    return {
        report.root_span_id: f"AgentOps end state: {report.end_state}"
        if report.delivered
        else f"AgentOps: session not delivered ({report.detail})"
        for report in reports
    }


def _sessions_clause(reports: list[SessionReport]) -> str:
    lost = [report for report in reports if not report.delivered]
    if not lost:
        return "AgentOps: one session per root (end state on the root line)"
    count = "session" if len(lost) == 1 else f"{len(lost)} sessions"
    return f"AgentOps: {count} not delivered ({lost[0].detail}); run otel-crew doctor"


def _summary(
    spans: list[Any], trees: int, handled: list[str], export: _Export, reports: list[SessionReport] | None
) -> str:
    failures = f", {len(handled)} failure handled by the pipeline" if handled else ""
    where = export.note
    if export.exporter is not None and export.exporter.ever_failed:
        where = f"{where}, but the export failed: spans dropped"
    if reports is not None:
        sessions = _sessions_clause(reports)
    else:
        sessions = f"AgentOps off ({pip_install('agentops')} and set AGENTOPS_API_KEY for one session per root)"
    traces = "1 trace" if trees == 1 else f"{trees} traces"
    return f"{traces}, {len(spans)} spans{_llm_calls(spans)}{failures}; {where}; {sessions}"


def _llm_calls(spans: list[Any]) -> str:
    """``, 9 LLM calls (3,456 tokens in, 234 out)``: the pipeline's calls and tokens, summed over the calls."""
    calls = [span for span in spans if (span.attributes or {}).get(GEN_AI_OPERATION_NAME) == OPERATION_CHAT]
    if not calls:
        return ""
    tokens_in = sum((span.attributes or {}).get(GEN_AI_USAGE_INPUT_TOKENS, 0) for span in calls)
    tokens_out = sum((span.attributes or {}).get(GEN_AI_USAGE_OUTPUT_TOKENS, 0) for span in calls)
    return f", {len(calls)} LLM calls ({tokens_in:,} tokens in, {tokens_out:,} out)"


def run(console: Console) -> int:
    if importlib.util.find_spec("crewai") is None:
        console.print(f"otel-crew demo needs CrewAI: {pip_install('crewai')}", markup=False, style="red")
        return EXIT_MISSING
    try:
        settings = export_settings()
    except ConfigError as error:
        console.print(f"otel-crew: {error}", markup=False, style="red")
        return EXIT_USAGE
    agentops_on = _agentops_wanted()
    with _agentops_hidden_from_crewai(hide=not agentops_on):
        return _run(console, settings, agentops_on)


def _run(console: Console, settings: ExportSettings, agentops_on: bool) -> int:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_crew.cli.demo import quiet_framework, run_demo_pipeline
    from otel_crew.cli.tree import trace_trees
    from otel_crew.instrumentation.instrumentor import OtelCrewInstrumentor

    named = not settings.service_name.startswith("unknown_service")  # the variables win over the demo's name
    provider = TracerProvider(resource=Resource.create({} if named else {"service.name": "otel-crew-demo"}))
    collected = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(collected))
    progress: Any = console.status("starting") if console.is_terminal else contextlib.nullcontext()
    failure: Exception | None = None
    handled: list[str] = []
    with progress as status, quiet_framework() as captured:
        export = _export(settings)
        if export.exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(export.exporter))
        agentops_ran = agentops_on and _agentops_start()  # before _quiet_crewai: its provider must record
        _quiet_crewai()
        instrumentor = OtelCrewInstrumentor()
        bridge = AgentOpsSessionProcessor() if agentops_ran else None
        instrumentor.instrument(tracer_provider=provider, agentops=bridge or "off")
        try:
            handled = run_demo_pipeline(
                provider, on_step=lambda title: status.update(f"running {title}") if status else None
            )
        except Exception as error:
            failure = error
        finally:
            instrumentor.uninstrument()
            provider.shutdown()
    if failure is not None:
        console.print(captured.getvalue()[-3000:], markup=False, highlight=False)
        console.print(f"the demo pipeline failed: {type(failure).__name__}: {failure}", markup=False, style="red")
        return EXIT_FAILED
    spans = list(collected.get_finished_spans())
    reports = None if bridge is None else bridge.session_reports()
    trees = trace_trees(spans, _session_notes(reports or []))
    for tree in trees:
        console.print(tree)
    console.print(_summary(spans, len(trees), handled, export, reports), markup=False)
    return EXIT_OK
