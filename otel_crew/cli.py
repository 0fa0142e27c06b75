"""The ``otel-crew`` command: ``demo`` runs a pipeline offline and prints its trace tree.

Exit codes: 0 success, 1 the pipeline failed, 2 bad usage, 3 something it
needs is not installed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from rich.console import Console

from otel_crew.version import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MISSING = 0, 1, 2, 3


def _quiet_crewai() -> None:
    """The demo runs offline: CrewAI's phone-home and its tracing prompt are off."""
    os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")


def _demo(console: Console) -> int:
    _quiet_crewai()
    try:
        import crewai  # noqa: F401
    except ImportError:
        console.print("[red]otel-crew demo needs CrewAI:[/] pip install 'otel-crew[crewai]'")
        return EXIT_MISSING
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_crew.demo import run_demo_pipeline
    from otel_crew.instrumentor import OtelCrewInstrumentor
    from otel_crew.tree import trace_trees

    provider = TracerProvider()
    collected = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(collected))
    instrumentor = OtelCrewInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-crew", description="OpenTelemetry for CrewAI pipelines, under a root span you own."
    )
    parser.add_argument("--version", action="version", version=f"otel-crew {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "demo",
        help="run an offline pipeline of crews and print its trace tree",
        description="Run an offline pipeline of crews (local model, no network) and print its trace tree.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    console = Console()
    if arguments.command == "demo":
        return _demo(console)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
