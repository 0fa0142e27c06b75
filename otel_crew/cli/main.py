"""The ``otel-crew`` command: ``demo`` runs a pipeline offline and prints its
trace tree; ``doctor`` says what is installed and what happens to spans;
``recover`` ends the roots (and AgentOps sessions) of processes that died.

Exit codes: 0 success, 1 the pipeline failed (demo) or something needs fixing
(doctor), 2 bad usage, 3 something the command needs is not installed.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from importlib.metadata import version

from packaging.version import Version
from rich.console import Console

from otel_crew.version import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MISSING = 0, 1, 2, 3


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


def _wants_export() -> bool:
    """The demo exports over OTLP when the variables name an endpoint."""
    named = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    return bool(named) and os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "otlp"


def _doctor(console: Console) -> int:
    from otel_crew.cli.doctor import diagnose

    with console.status("checking the installation and the collector endpoint"):
        packages, findings = diagnose()
    console.print("[bold]installed[/]")
    for line in packages:
        console.print(f"  {line}")
    console.print("[bold]what happens to your spans[/]")
    for finding in findings:
        mark = "[green]ok[/]  " if finding.ok else "[red]fix[/] "
        console.print(f"  {mark}{finding.text}")
    return EXIT_OK if all(finding.ok for finding in findings) else EXIT_FAILED


def _demo(console: Console) -> int:
    try:
        import crewai  # noqa: F401
    except ImportError:
        console.print("[red]otel-crew demo needs CrewAI:[/] pip install 'otel-crew[crewai]'")
        return EXIT_MISSING
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_crew.cli.demo import run_demo_pipeline
    from otel_crew.cli.tree import trace_trees
    from otel_crew.config import otlp_endpoint, otlp_exporter, otlp_protocol
    from otel_crew.instrumentation.instrumentor import OtelCrewInstrumentor

    named = "OTEL_SERVICE_NAME" in os.environ  # the variable wins over the demo's own name
    provider = TracerProvider(resource=Resource.create({} if named else {"service.name": "otel-crew-demo"}))
    collected = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(collected))
    if _wants_export():
        exporter = otlp_exporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        console.print(f"exporting to {otlp_endpoint()} ({otlp_protocol()})")
    _quiet_crewai()
    instrumentor = OtelCrewInstrumentor()
    # Offline: the tree shows the AgentOps end state each root would get.
    instrumentor.instrument(tracer_provider=provider, agentops="off")
    try:
        with console.status("starting") as status:
            outcomes = run_demo_pipeline(provider, on_step=lambda title: status.update(f"running {title}"))
    except Exception as error:
        console.print(f"[red]the demo pipeline failed:[/] {type(error).__name__}: {error}")
        return EXIT_FAILED
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    for outcome in outcomes:
        console.print(f"- {outcome}")
    for tree in trace_trees(collected.get_finished_spans()):
        console.print(tree)
    return EXIT_OK


def _recover(console: Console) -> int:
    from otel_crew.cli.recover import recover_now

    console.print(recover_now())
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-crew", description="OpenTelemetry for CrewAI pipelines, under a root span you own."
    )
    parser.add_argument("--version", action="version", version=f"otel-crew {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "demo",
        help="run an offline pipeline of crews and print its trace tree",
        description=(
            "Run an offline pipeline of crews (local model, no network) under one root and print its trace "
            "tree. With OTEL_EXPORTER_OTLP_ENDPOINT set it also exports over OTLP "
            "(OTEL_EXPORTER_OTLP_PROTOCOL: grpc or http/protobuf)."
        ),
    )
    commands.add_parser(
        "doctor",
        help="say what is installed, whether the collector answers, and what happens to your spans",
        description="Say what is installed, whether the OTLP endpoint answers, and what happens to your spans.",
    )
    commands.add_parser(
        "recover",
        help="end the roots and AgentOps sessions of this host's processes that died with them open",
        description=(
            "End, once, the open roots journaled in OTEL_CREW_STATE_DIR by this host's processes that are gone "
            "(exported with the OTEL_EXPORTER_OTLP_* variables, status ERROR, otel_crew.root.recovered=true) "
            "and their AgentOps sessions ('Indeterminate', when AGENTOPS_API_KEY is set)."
        ),
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    console = Console()
    if arguments.command == "demo":
        return _demo(console)
    if arguments.command == "doctor":
        return _doctor(console)
    if arguments.command == "recover":
        return _recover(console)
    return EXIT_USAGE
