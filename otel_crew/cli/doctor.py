"""``otel-crew doctor``: what is installed, whether the collector answers, and
what will happen to the user's spans."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import urlsplit

from packaging.requirements import Requirement
from packaging.version import InvalidVersion, Version

from otel_crew import config
from otel_crew.instrumentation.instrumentor import SUPPORTED_CREWAI

PACKAGES = (
    "otel-crew",
    "crewai",
    "agentops",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-grpc",
    "opentelemetry-exporter-otlp-proto-http",
)


@dataclass(frozen=True)
class Finding:
    ok: bool
    text: str


def installed(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def endpoint_answers(endpoint: str, timeout: float = 2.0) -> bool:
    """Whether something accepts TCP connections at the endpoint's host and port."""
    parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "localhost", port), timeout=timeout):
            return True
    except OSError:
        return False


def crewai_finding() -> Finding:
    found = installed("crewai")
    if found is None:
        return Finding(False, "CrewAI is not installed: nothing to instrument (pip install 'otel-crew[crewai]')")
    try:
        supported = Requirement(SUPPORTED_CREWAI).specifier.contains(found, prereleases=True)
    except InvalidVersion:
        supported = False
    if not supported:
        return Finding(False, f"CrewAI {found} is outside the supported range {SUPPORTED_CREWAI!r}")
    return Finding(True, f"CrewAI {found}: kickoffs, agent steps and tool calls become spans")


def agentops_finding() -> Finding:
    found = installed("agentops")
    if found is None:
        return Finding(True, "AgentOps not installed: no sessions (the bridge stays off)")
    otel = installed("opentelemetry-sdk") or "0"
    repair = ""
    if Version(found) < Version("0.5") and Version(otel) >= Version("1.45"):
        repair = f"; its exporter cannot send with OpenTelemetry {otel}, otel-crew repairs it"
    return Finding(True, f"AgentOps {found}: one session per root, ended with the root's status{repair}")


def export_findings(check_endpoint: bool = True) -> list[Finding]:
    choice = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    service = os.environ.get("OTEL_SERVICE_NAME", "unknown_service")
    if choice != "otlp":
        return [Finding(True, f"OTEL_TRACES_EXPORTER={choice}: configure() exports no OTLP (service {service!r})")]
    try:
        protocol, endpoint = config.otlp_protocol(), config.otlp_endpoint()
    except ValueError as error:
        return [Finding(False, str(error))]
    findings = [Finding(True, f"configure() exports OTLP/{protocol} to {endpoint} as service {service!r}")]
    if check_endpoint:
        if endpoint_answers(endpoint):
            findings.append(Finding(True, f"{endpoint} answers"))
        else:
            findings.append(
                Finding(False, f"{endpoint} does not answer: spans would be dropped (docker compose up -d --wait?)")
            )
    return findings


def diagnose() -> tuple[list[str], list[Finding]]:
    """(installed package lines, findings)."""
    packages = [f"{name} {installed(name) or 'not installed'}" for name in PACKAGES]
    findings = [crewai_finding(), agentops_finding(), *export_findings()]
    if os.environ.get("CREWAI_DISABLE_TELEMETRY", "").lower() != "true":
        findings.append(Finding(True, "CrewAI's own telemetry is on (CREWAI_DISABLE_TELEMETRY=true switches it off)"))
    return packages, findings
