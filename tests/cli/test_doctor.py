"""``otel-crew doctor`` tells the truth: a real OTLP request on the configured
protocol, the SDK's service-name precedence, lines only where they apply,
plain unwrapped output when piped, --json, and exit 1 when something needs fixing."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from cli_run import (
    PROTOCOLS,
    Run,
    black_hole,
    clean_env,
    closed_port,
    grpc_server_without_otlp,
    otel_crew,
    otlp_receiver,
    plain_web_server,
)
from conftest import CREWAI
from otlp_receivers import GrpcReceiver, HttpReceiver

with_crewai = pytest.mark.skipif(CREWAI is None, reason="needs CrewAI installed")
without_crewai = pytest.mark.skipif(CREWAI is not None, reason="runs in the environment without CrewAI")


@pytest.fixture(params=list(PROTOCOLS))
def receiver(request: pytest.FixtureRequest) -> Iterator[tuple[str, GrpcReceiver | HttpReceiver]]:
    with otlp_receiver(request.param) as server:
        yield request.param, server


def doctor(*arguments: str, **variables: str) -> Run:
    return otel_crew("doctor", *arguments, env=clean_env(CREWAI_DISABLE_TELEMETRY="true", **variables))


def finding(run: Run, start: str) -> str:
    (line,) = [line for line in run.stdout.splitlines() if start in line]
    return line


@with_crewai
def test_an_otlp_receiver_answers_the_empty_export(receiver: tuple[str, GrpcReceiver | HttpReceiver]) -> None:
    protocol, server = receiver
    run = doctor(OTEL_EXPORTER_OTLP_PROTOCOL=protocol, OTEL_EXPORTER_OTLP_ENDPOINT=server.url)
    assert run.returncode == 0, run.stdout
    answer = "OTLP/gRPC" if protocol == "grpc" else "OTLP/HTTP"
    assert f"ok  {server.url} answers as an {answer} receiver" in run.stdout
    assert server.snapshot() == []  # the request carried no spans
    assert "crewai " in run.stdout and "opentelemetry-sdk " in run.stdout


@pytest.mark.parametrize(
    ("protocol", "server", "says"),
    [
        ("http/protobuf", plain_web_server, "answers HTTP 404 at /v1/traces: not an OTLP/HTTP receiver"),
        ("grpc", plain_web_server, "accepts connections but does not speak OTLP/gRPC"),
        ("grpc", grpc_server_without_otlp, "is a gRPC server without the OTLP trace service: not an OTLP receiver"),
        ("grpc", black_hole, "accepts connections but does not answer within 1 s"),
        ("http/protobuf", black_hole, "accepts connections but does not answer within 1 s"),
    ],
    ids=["web-server-http", "web-server-grpc", "grpc-without-otlp", "black-hole-grpc", "black-hole-http"],
)
def test_a_process_that_is_not_an_otlp_receiver_is_reported_as_such(protocol: str, server: object, says: str) -> None:
    with server() as url:  # type: ignore[operator]
        run = doctor(OTEL_EXPORTER_OTLP_PROTOCOL=protocol, OTEL_EXPORTER_OTLP_ENDPOINT=url)
    assert f"fix {url} {says}; spans would be dropped" in run.stdout
    assert run.returncode == 1


def test_nothing_listening_says_how_to_start_a_collector() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    run = doctor(OTEL_EXPORTER_OTLP_ENDPOINT=url)
    assert finding(run, f"{url} does not answer").endswith(
        f"fix {url} does not answer (nothing listens there); spans would be dropped "
        "(start a collector: docker compose up -d --wait)"
    )
    assert run.returncode == 1


@pytest.mark.parametrize(
    ("variables", "service"),
    [
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attributes"}, "from-attributes"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attributes", "OTEL_SERVICE_NAME": "named"}, "named"),
    ],
)
def test_the_service_name_follows_the_sdk_precedence(variables: dict[str, str], service: str) -> None:
    run = doctor(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{closed_port()}", **variables)
    assert f"as service {service!r}" in run.stdout


def test_a_bad_variable_is_one_fix_line_naming_it() -> None:
    run = doctor(OTEL_EXPORTER_OTLP_PROTOCOL="http/json")
    assert finding(run, "OTEL_EXPORTER_OTLP_PROTOCOL").startswith(
        "  fix OTEL_EXPORTER_OTLP_PROTOCOL='http/json': OpenTelemetry's Python OTLP exporter has no JSON encoding"
    )
    assert "configure() exports" not in run.stdout
    assert run.returncode == 1


@with_crewai
def test_crewai_telemetry_is_mentioned_when_on_and_piped_lines_are_not_wrapped() -> None:
    env = clean_env(OTEL_TRACES_EXPORTER="none")
    env.pop("CREWAI_DISABLE_TELEMETRY", None)
    run = otel_crew("doctor", env=env)
    line = finding(run, "CrewAI's own telemetry is on")
    assert len(line) > 120 and line.endswith("(CREWAI_DISABLE_TELEMETRY=true switches it off)")
    off = doctor(OTEL_TRACES_EXPORTER="none")
    assert "CrewAI's own telemetry" not in off.stdout


@without_crewai
def test_without_crewai_the_hint_shows_the_extra_and_no_crewai_telemetry_line() -> None:
    env = clean_env(OTEL_TRACES_EXPORTER="none")
    env.pop("CREWAI_DISABLE_TELEMETRY", None)
    run = otel_crew("doctor", env=env)
    assert "CrewAI is not installed: nothing to instrument (pip install \".[crewai]\" in the otel-crew clone)" in run.stdout
    assert "CrewAI's own telemetry" not in run.stdout
    assert run.returncode == 1


def test_json_for_scripts() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    run = doctor("--json", OTEL_EXPORTER_OTLP_ENDPOINT=url)
    report = json.loads(run.stdout)
    assert report["ok"] is False and run.returncode == 1
    assert report["packages"]["opentelemetry-sdk"]
    (endpoint,) = [item for item in report["findings"] if item["check"] == "endpoint"]
    assert endpoint["ok"] is False and endpoint["text"].startswith(f"{url} does not answer")


def test_sdk_disabled_needs_fixing() -> None:
    run = doctor(OTEL_SDK_DISABLED="true", OTEL_TRACES_EXPORTER="none")
    assert "fix OTEL_SDK_DISABLED=true: every SDK tracer provider records nothing" in run.stdout
    assert run.returncode == 1
