"""``otel-crew doctor``: what is installed, whether the collector really is an
OTLP receiver, and what will happen to the user's spans. Every line is a
finding; a finding that needs fixing makes the exit code non-zero."""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from packaging.requirements import Requirement
from packaging.version import InvalidVersion, Version

from otel_crew import config
from otel_crew.cli.agentops_probe import probe_agentops
from otel_crew.cli.collector_hint import start_collector
from otel_crew.cli.otlp_probe import probe
from otel_crew.install import pip_install
from otel_crew.instrumentation.instrumentor import SUPPORTED_CREWAI

CREWAI_TELEMETRY = ("telemetry.crewai.com", 4319)  # CrewAI's own, in crewai/telemetry/constants.py
PACKAGES = (
    "otel-crew",
    "crewai",
    "agentops",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-grpc",
    "opentelemetry-exporter-otlp-proto-http",
    "opentelemetry-distro",
    "celery",
    "opentelemetry-instrumentation-celery",
)


@dataclass(frozen=True)
class Finding:
    check: str  # a stable name, for --json
    ok: bool
    text: str


def installed(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def crewai_findings() -> list[Finding]:
    found = installed("crewai")
    if found is None:
        return [Finding("crewai", False, f"CrewAI is not installed: nothing to instrument ({pip_install('crewai')})")]
    try:
        supported = Requirement(SUPPORTED_CREWAI).specifier.contains(found, prereleases=True)
    except InvalidVersion:
        supported = False
    if not supported:
        return [
            Finding(
                "crewai",
                False,
                f"CrewAI {found} is outside the supported range {SUPPORTED_CREWAI!r}: {pip_install('crewai')}",
            )
        ]
    findings = [Finding("crewai", True, f"CrewAI {found}: crew kickoffs, agent steps and tool calls become spans")]
    telemetry = crewai_telemetry_finding()
    if telemetry is not None:
        findings.append(telemetry)
    return findings


def _reachable(address: tuple[str, int], timeout_s: float) -> bool:
    try:
        with socket.create_connection(address, timeout=timeout_s):
            return True
    except OSError:
        return False


def crewai_telemetry_finding(address: tuple[str, int] = CREWAI_TELEMETRY) -> Finding | None:
    """CrewAI's own telemetry, when on: whether it can reach its host (without it, each exit waits ~10 s)."""
    if os.environ.get("CREWAI_DISABLE_TELEMETRY", "").strip().lower() == "true":
        return None
    host, port = address
    if not _reachable(address, timeout_s=2.0):
        return Finding(
            "crewai_telemetry",
            False,
            f"CrewAI's own telemetry cannot reach {host}:{port}, so each process's exit waits about 10 s for it: "
            "set CREWAI_DISABLE_TELEMETRY=true",
        )
    return Finding(
        "crewai_telemetry",
        True,
        f"CrewAI's own telemetry is on: it sends usage data to {host} (CREWAI_DISABLE_TELEMETRY=true switches it off)",
    )


def agentops_finding(check_endpoint: bool = True) -> Finding:
    found = installed("agentops")
    if found is None:
        return Finding("agentops", True, f"AgentOps not installed: no sessions ({pip_install('agentops')} to add them)")
    otel = installed("opentelemetry-sdk") or "0"
    repair = ""
    if Version(found) < Version("0.5") and Version(otel) >= Version("1.45"):
        repair = f"; its exporter cannot send with OpenTelemetry {otel}, otel-crew repairs it"
    sessions = f"AgentOps {found}: one session per root, ended with the root{repair}"
    if not os.environ.get("AGENTOPS_API_KEY"):  # AgentOps installed but unused: not a fault
        return Finding("agentops", True, f"{sessions}; no AGENTOPS_API_KEY set, so agentops.init() has no key")
    if not check_endpoint:
        return Finding("agentops", True, sessions)
    answer = probe_agentops()
    if not answer.ok:
        return Finding("agentops", False, f"AgentOps {found}: {answer.detail}")
    return Finding("agentops", True, f"{sessions}; {answer.detail}")


def celery_finding() -> Finding | None:
    """Celery with its instrumentor: the trace crosses the broker when both sides use otel-crew's provider."""
    if installed("celery") is None:
        return None
    if installed("opentelemetry-instrumentation-celery") is None:
        return Finding(
            "celery",
            True,
            "Celery without opentelemetry-instrumentation-celery: a task's crews start a trace and a session of "
            f"their own in the worker ({pip_install('celery')})",
        )
    return Finding(
        "celery",
        True,
        "Celery: instrument() puts Celery's instrumentor on otel-crew's provider (in workers: in a "
        "worker_process_init handler); a CeleryInstrumentor().instrument() of your own without "
        "tracer_provider=... after agentops.init() sends Celery's spans to AgentOps' provider and splits the trace",
    )


def _zero_code_finding() -> Finding | None:
    if "otel_crew" in config.disabled_instrumentations():
        return Finding(
            "zero_code",
            True,
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS names otel_crew: opentelemetry-instrument skips it",
        )
    if installed("opentelemetry-distro") is None:
        return Finding(
            "zero_code",
            True,
            "opentelemetry-instrument would build no tracer provider without the distro "
            f"({pip_install('auto')}); configure() needs none",
        )
    return None


def export_findings(settings: config.ExportSettings, check_endpoint: bool = True) -> list[Finding]:
    service = f"as service {settings.service_name!r}"
    findings = []
    if settings.sdk_disabled:
        findings.append(
            Finding("sdk", False, "OTEL_SDK_DISABLED=true makes every SDK tracer provider record nothing: unset it")
        )
    if not settings.exporters:
        findings.append(Finding("export", True, f"OTEL_TRACES_EXPORTER=none: configure() exports nothing ({service})"))
    if "console" in settings.exporters:
        findings.append(Finding("export", True, f"configure() prints spans to the console {service}"))
    if not settings.exports_otlp:
        return findings
    findings.append(
        Finding("export", True, f"configure() exports OTLP/{settings.protocol} to {settings.endpoint} {service}")
    )
    if check_endpoint:
        findings.append(_endpoint_finding(settings))
    return findings


def _endpoint_finding(settings: config.ExportSettings) -> Finding:
    result = probe(settings)
    if result.answers:
        return Finding("endpoint", True, f"{settings.endpoint} {result.detail}")
    if not settings.endpoint_named:  # nothing asked for: local spans are a fine way to work
        return Finding(
            "endpoint",
            True,
            f"no OTEL_EXPORTER_OTLP_ENDPOINT set and no receiver at the default {settings.endpoint}: spans stay in "
            "this process (the demo prints them; configure() says once that it cannot export them)",
        )
    text = f"{settings.endpoint} {result.detail}; spans would be dropped: "
    text += start_collector() if not result.listening else "point OTEL_EXPORTER_OTLP_ENDPOINT at an OTLP receiver"
    return Finding("endpoint", False, text)


def diagnose(check_endpoint: bool = True) -> tuple[dict[str, str | None], list[Finding]]:
    """(installed versions by package, findings)."""
    packages = {name: installed(name) for name in PACKAGES}
    findings = [*crewai_findings(), agentops_finding(check_endpoint)]
    problems = config.config_problems()
    findings += [Finding("config", False, problem) for problem in problems]
    if not problems:
        findings += export_findings(config.export_settings(), check_endpoint)
    findings += [finding for finding in (celery_finding(), _zero_code_finding()) if finding is not None]
    return packages, findings


def as_json(packages: dict[str, str | None], findings: list[Finding]) -> dict[str, Any]:
    return {
        "ok": all(finding.ok for finding in findings),
        "packages": packages,
        "findings": [asdict(finding) for finding in findings],
    }
