"""The ``otel-crew`` command: ``demo`` runs a pipeline offline and prints its
trace tree; ``doctor`` says what is installed and what happens to spans;
``recover`` ends the roots (and AgentOps sessions) of processes that died.

Exit codes are in ``exit_codes.py``. Output to a terminal is styled; piped
output is plain and never wrapped, and hints print extras literally.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from rich.console import Console

from otel_crew.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from otel_crew.version import __version__

_UNWRAPPED_WIDTH = 100_000  # piped output: one line stays one line


def make_console() -> Console:
    """A console on the real stdout: styled and fitted to a terminal, plain and unwrapped otherwise."""
    stream = sys.stdout
    terminal = stream.isatty()
    return Console(file=stream, highlight=False, width=None if terminal else _UNWRAPPED_WIDTH, soft_wrap=not terminal)


def _doctor(console: Console, as_json: bool) -> int:
    from otel_crew.cli.doctor import as_json as doctor_json
    from otel_crew.cli.doctor import diagnose

    if console.is_terminal and not as_json:
        with console.status("checking the installation and the collector endpoint"):
            packages, findings = diagnose()
    else:
        packages, findings = diagnose()
    healthy = all(finding.ok for finding in findings)
    if as_json:
        console.file.write(json.dumps(doctor_json(packages, findings), indent=2) + "\n")
        return EXIT_OK if healthy else EXIT_FAILED
    console.print("[bold]installed[/]")
    for name, found in packages.items():
        console.print(f"  {name} {found or 'not installed'}", markup=False)
    console.print("[bold]what happens to your spans[/]")
    for finding in findings:
        console.print("  [green]ok[/]  " if finding.ok else "  [red]fix[/] ", end="")
        console.print(finding.text, markup=False)
    return EXIT_OK if healthy else EXIT_FAILED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-crew", description="OpenTelemetry for CrewAI pipelines, under a root span you own."
    )
    parser.add_argument("--version", action="version", version=f"otel-crew {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "demo",
        help="run an offline pipeline (a flow and crews) and print its trace tree",
        description=(
            "Run an offline pipeline (a two-step flow and two more crews, a local model, no network) under one "
            "root and print its trace tree. With OTEL_EXPORTER_OTLP_ENDPOINT set it also exports over OTLP "
            "(OTEL_EXPORTER_OTLP_PROTOCOL: grpc or http/protobuf) when the endpoint is an OTLP receiver. "
            "With AGENTOPS_API_KEY set and AgentOps installed, each root gets one AgentOps session."
        ),
    )
    doctor = commands.add_parser(
        "doctor",
        help="say what is installed, whether the collector answers, and what happens to your spans",
        description=(
            "Say what is installed, whether the OTLP endpoint is an OTLP receiver (one empty export on the "
            "configured protocol), and what happens to your spans. Exit code 1 when something needs fixing."
        ),
    )
    doctor.add_argument("--json", action="store_true", help="print the findings as JSON, for scripts")
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
    console = make_console()
    if arguments.command == "demo":
        from otel_crew.cli.demo_command import run

        return run(console)
    if arguments.command == "doctor":
        return _doctor(console, arguments.json)
    if arguments.command == "recover":
        from otel_crew.cli.recover import recover_now

        console.print(recover_now(), markup=False)
        return EXIT_OK
    return EXIT_USAGE
