"""``otel-crew doctor`` tells the truth: a real OTLP request on the configured
protocol, the SDK's service-name precedence, lines only where they apply,
plain unwrapped output when piped, --json, and exit 1 when something needs fixing."""

from __future__ import annotations

import json
import socket
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

from otel_crew.cli.collector_hint import COMPOSE_FILE, start_collector
from otel_crew.cli.doctor import crewai_telemetry_finding

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


def test_nothing_listening_at_a_named_endpoint_says_how_to_start_a_collector() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    run = doctor(OTEL_EXPORTER_OTLP_ENDPOINT=url)
    assert finding(run, f"{url} does not answer").endswith(
        f"fix {url} does not answer (nothing listens there); spans would be dropped: {start_collector()}"
    )
    assert run.returncode == 1


@with_crewai  # without CrewAI, doctor has that to fix
def test_no_endpoint_set_and_nothing_at_the_default_is_fine_spans_stay_local() -> None:
    # The default endpoint is localhost:4317/4318; the HTTP one on a closed port stands in for "nothing there".
    run = doctor(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf")
    if "answers as an OTLP" in run.stdout:
        pytest.skip("an OTLP receiver listens on this machine's default port")
    assert finding(run, "no OTEL_EXPORTER_OTLP_ENDPOINT set").startswith(
        "  ok  no OTEL_EXPORTER_OTLP_ENDPOINT set and no receiver at the default http://localhost:4318: spans stay"
    )
    assert run.returncode == 0, run.stdout


def test_the_compose_hint_only_where_docker_compose_works(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert start_collector() == "start an OpenTelemetry Collector (or any OTLP receiver) there"
    docker = tmp_path / "docker"  # type: ignore[operator]
    docker.write_text('#!/bin/sh\n[ "$1 $2" = "compose version" ]\n')
    docker.chmod(0o755)
    assert start_collector() == f"start one: docker compose -f {COMPOSE_FILE} up -d --wait"


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
def test_crewai_telemetry_that_cannot_reach_its_host_is_one_fix_line_and_piped_lines_are_not_wrapped() -> None:
    env = clean_env(OTEL_TRACES_EXPORTER="none")
    env.pop("CREWAI_DISABLE_TELEMETRY", None)
    run = otel_crew("doctor", env=env)
    if "CrewAI's own telemetry is on" in run.stdout:
        pytest.skip("this machine reaches CrewAI's telemetry host")
    line = finding(run, "CrewAI's own telemetry")
    assert line == (
        "  fix CrewAI's own telemetry cannot reach telemetry.crewai.com:4319, so each process's exit waits about "
        "10 s for it: set CREWAI_DISABLE_TELEMETRY=true"
    )
    assert run.returncode == 1
    off = doctor(OTEL_TRACES_EXPORTER="none")
    assert "CrewAI's own telemetry" not in off.stdout


def test_crewai_telemetry_finding_says_whether_its_host_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREWAI_DISABLE_TELEMETRY")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        reached = crewai_telemetry_finding(listener.getsockname())
    assert reached is not None and reached.ok and "CrewAI's own telemetry is on" in reached.text
    missed = crewai_telemetry_finding(("127.0.0.1", closed_port()))
    assert missed is not None and not missed.ok and missed.text.endswith("set CREWAI_DISABLE_TELEMETRY=true")
    monkeypatch.setenv("CREWAI_DISABLE_TELEMETRY", "true")
    assert crewai_telemetry_finding(("127.0.0.1", closed_port())) is None


@without_crewai
def test_without_crewai_the_hint_shows_the_extra_and_no_crewai_telemetry_line() -> None:
    env = clean_env(OTEL_TRACES_EXPORTER="none")
    env.pop("CREWAI_DISABLE_TELEMETRY", None)
    run = otel_crew("doctor", env=env)
    assert (
        'CrewAI is not installed: nothing to instrument (pip install ".[crewai]" in the otel-crew clone)' in run.stdout
    )
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
    assert "fix OTEL_SDK_DISABLED=true makes every SDK tracer provider record nothing: unset it" in run.stdout
    assert run.returncode == 1


def test_with_celery_installed_it_says_where_celerys_spans_must_go() -> None:
    run = doctor("--json", OTEL_TRACES_EXPORTER="none")
    report = json.loads(run.stdout)
    (celery,) = [item for item in report["findings"] if item["check"] == "celery"]
    assert report["packages"]["celery"] and report["packages"]["opentelemetry-instrumentation-celery"]
    assert celery["ok"] is True and "without tracer_provider=... after agentops.init()" in celery["text"]


# -- AgentOps: the key and the endpoint, asked for real (AgentOps' token exchange) ------------------


def agentops_doctor(endpoint: str, key: str = "loopback-api-key") -> Run:
    return doctor(
        "--json",
        OTEL_TRACES_EXPORTER="none",
        AGENTOPS_API_ENDPOINT=endpoint,
        AGENTOPS_API_KEY=key,
    )


def agentops_line(run: Run) -> dict[str, object]:
    (line,) = [item for item in json.loads(run.stdout)["findings"] if item["check"] == "agentops"]
    return line  # type: ignore[no-any-return]


def test_agentops_taking_the_key_is_ok() -> None:
    from conftest import AGENTOPS

    run = agentops_doctor(AGENTOPS.url)
    line = agentops_line(run)
    assert line["ok"] is True and str(line["text"]).endswith(f"{AGENTOPS.url} took AGENTOPS_API_KEY"), line
    assert run.returncode == (0 if CREWAI is not None else 1)  # without CrewAI, doctor fails for that alone


def test_agentops_refusing_the_key_is_one_fix_line() -> None:
    with plain_web_server(401) as url:  # as AgentOps answers a wrong key
        line = agentops_line(agentops_doctor(url, key="wrong"))
    assert line["ok"] is False
    assert str(line["text"]).endswith(f"{url} refused AGENTOPS_API_KEY (HTTP 401): check the key"), line


def test_agentops_not_answering_is_one_fix_line_within_the_timeout() -> None:
    with black_hole() as url:
        line = agentops_line(agentops_doctor(url))
    assert line["ok"] is False
    assert f"{url} did not answer within 3s" in str(line["text"]), line
