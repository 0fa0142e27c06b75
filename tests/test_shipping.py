"""Shipping: the Compose stack and Collector configs (checked without Docker),
OTLP export from the standard variables over real gRPC and HTTP, ``configure()``
and the ``otel-crew`` command."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from otlp_receivers import GrpcReceiver, HttpReceiver

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
COLLECTOR_CONFIGS = sorted((ROOT / "collector").rglob("*.yaml"))
MAIN_CONFIG = ROOT / "collector" / "otelcol-config.yaml"

DEMO_SPANS = {
    "demo-pipeline",
    "invoke_workflow research",
    "invoke_workflow managed",
    "invoke_workflow flaky-summary",
    "invoke_workflow writing",
    "invoke_agent Researcher",
    "invoke_agent Writer",
    "invoke_agent Crew Manager",
    "execute_tool word_count",
    "execute_tool Delegate work to coworker",
}


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())  # type: ignore[no-any-return]


def compose() -> dict[str, Any]:
    return load(COMPOSE)


# -- the Compose stack and the Collector configs, without Docker -------------------


def test_compose_file_validates_against_the_compose_specification() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_images_are_pinned_and_ports_published_on_loopback_only() -> None:
    services = compose()["services"]
    assert services["jaeger"]["image"] == "jaegertracing/jaeger:2.20.0"
    assert services["collector"]["image"] == "otel/opentelemetry-collector-contrib:0.159.0"
    for name, service in services.items():
        assert re.fullmatch(r"[^:]+:\d[\w.-]*", service["image"]), f"{name}: pin the image version"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} must be published on 127.0.0.1"
    assert "127.0.0.1:16686:16686" in services["jaeger"]["ports"]


def test_start_order_follows_health() -> None:
    services = compose()["services"]
    assert services["collector"]["depends_on"] == {"jaeger-ready": {"condition": "service_healthy"}}
    probe = " ".join(services["jaeger-ready"]["healthcheck"]["test"])
    assert "http://jaeger:13133/status" in probe
    assert "http://collector:13133/" in " ".join(services["collector-ready"]["healthcheck"]["test"])


@pytest.mark.parametrize("path", COLLECTOR_CONFIGS, ids=lambda path: path.name)
def test_every_pipeline_component_is_defined(path: Path) -> None:
    config = load(path)
    service = config["service"]
    for extension in service.get("extensions", []):
        assert extension in config["extensions"], f"{path.name}: extension {extension} is not defined"
    for pipeline_name, pipeline in service["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in config.get(kind, {}), f"{path.name}: {pipeline_name} uses undefined {component}"
        processors = pipeline.get("processors", [])
        assert processors and processors[0] == "memory_limiter", f"{path.name}: memory_limiter goes first"
    defined = [name for kind in ("exporters",) for name in config[kind]]
    assert not [name for name in defined if name.split("/")[0] in {"otlp", "otlphttp"}], "use otlp_grpc/otlp_http"
    assert "batch" not in config.get("processors", {}), f"{path.name}: batch in the exporter's sending_queue instead"


def test_main_config_exports_to_jaeger_and_agrees_with_compose_on_ports() -> None:
    config, services = load(MAIN_CONFIG), compose()["services"]
    endpoint = config["exporters"]["otlp_grpc/jaeger"]["endpoint"]
    host, port = endpoint.split(":")
    assert host in services and port == "4317"  # Jaeger's own OTLP gRPC port, on the Compose network
    assert config["exporters"]["otlp_grpc/jaeger"]["sending_queue"] == {"batch": {}}
    assert config["exporters"]["debug"]["verbosity"] == "${env:COLLECTOR_DEBUG_VERBOSITY:-basic}"
    assert "COLLECTOR_DEBUG_VERBOSITY" in services["collector"]["environment"]
    published = {port.split(":")[2] for port in services["collector"]["ports"]}
    protocols = config["receivers"]["otlp"]["protocols"]
    listened = {protocols["grpc"]["endpoint"].split(":")[1], protocols["http"]["endpoint"].split(":")[1]}
    listened.add(config["extensions"]["health_check"]["endpoint"].split(":")[1])
    assert published == listened == {"4317", "4318", "13133"}
    mounted = services["collector"]["volumes"][0].split(":")
    assert (ROOT / mounted[0]).resolve() == MAIN_CONFIG and mounted[1] in " ".join(services["collector"]["command"])


def test_scale_out_agent_balances_by_trace_id_onto_the_gateways() -> None:
    agent = load(ROOT / "collector" / "scale-out" / "agent.yaml")
    gateway = load(ROOT / "collector" / "scale-out" / "gateway.yaml")
    balancing = agent["exporters"]["loadbalancing"]
    assert balancing["routing_key"] == "traceID"
    assert balancing["resolver"]["dns"]["port"] == 4317
    assert gateway["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(":4317")
    assert "tail_sampling" in gateway["service"]["pipelines"]["traces"]["processors"]


CREDENTIAL_NAMES = [
    "OPENAI_API_KEY",
    "llm.api_key",
    "x-api-key",
    "http.request.header.authorization",
    "http.request.header.proxy-authorization",
    "http.request.header.cookie",
    "http.response.header.set-cookie",
    "db.password",
    "smtp.passwd",
    "client_secret",
    "AWS_SECRET_ACCESS_KEY",
    "gcp.credentials",
    "ssh.private_key",
    "session_token",
    "access_token",
    "oauth.refresh_token",
    "auth_token",
    "http.request.header.x-auth-token",
    "bearer.token",
    "GITHUB_TOKEN",
    "id_token",
    "agentops.token",
    "token",
]
TOKEN_COUNTS_AND_OTHER_NAMES = [
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.reasoning_tokens",
    "gen_ai.usage.total_tokens",
    "gen_ai.request.max_tokens",
    "gen_ai.token.type",
    "llm.usage.total_tokens",
    "llm.token_count.prompt",
    "llm.token_count.completion",
    "llm.token_count.total",
    "crewai.usage.prompt_tokens",
    "crewai.usage.successful_requests",
    "total_tokens",
    "tokenizer.name",
    "gen_ai.agent.name",
    "gen_ai.workflow.name",
    "crewai.task.description",
    "session.id",
    "http.request.header.content-type",
]


def credential_delete_patterns() -> list[tuple[str, str]]:
    """(config, pattern) of every name-pattern delete in the Collector configs."""
    found = []
    for path in COLLECTOR_CONFIGS:
        for name, processor in load(path).get("processors", {}).items():
            if name.split("/")[0] == "attributes":
                for action in processor["actions"]:
                    if action["action"] == "delete" and "pattern" in action:
                        found.append((str(path.relative_to(ROOT)), action["pattern"]))
    return found


def test_every_config_that_receives_from_apps_drops_credentials_by_name() -> None:
    configs = {config for config, _ in credential_delete_patterns()}
    assert configs == {"collector/otelcol-config.yaml", "collector/scale-out/agent.yaml"}


@pytest.mark.parametrize(("config", "pattern"), credential_delete_patterns())
def test_credential_names_are_dropped_and_token_counts_kept(config: str, pattern: str) -> None:
    # The attributes processor tests keys with Go's regexp MatchString:
    # RE2 syntax, unanchored. These patterns use only syntax RE2 and Python
    # agree on (no look-around, no back-references), so re.search is faithful.
    assert not re.search(r"\(\?[=!<]|\\[1-9]", pattern), f"{config}: not RE2 syntax"
    dropped = [name for name in CREDENTIAL_NAMES + TOKEN_COUNTS_AND_OTHER_NAMES if re.search(pattern, name)]
    assert dropped == CREDENTIAL_NAMES, config


def test_credential_looking_values_are_masked() -> None:
    patterns = load(MAIN_CONFIG)["processors"]["redaction/credential_values"]["blocked_values"]
    for secret in ("sk-proj-abcdefghijklmnop1234", "Bearer eyJhbGciOi.abc", "AKIAABCDEFGHIJKLMNOP"):
        assert any(re.search(pattern, secret) for pattern in patterns), secret
    assert not any(re.search(pattern, "research the skies") for pattern in patterns)


def docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=30).returncode == 0


@pytest.mark.skipif(
    not docker_engine(), reason="no Docker engine on this machine (the docker client alone is not enough)"
)
def test_the_stack_receives_the_demo_and_jaeger_returns_the_trace() -> None:  # pragma: no cover - needs Docker
    import json
    import urllib.request
    from datetime import datetime, timedelta, timezone

    subprocess.run(["docker", "compose", "up", "-d", "--wait"], cwd=ROOT, check=True, timeout=600)
    try:
        env = {
            **os.environ,
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
            "OTEL_SERVICE_NAME": "otel-crew-stack",
        }
        subprocess.run(["otel-crew", "demo"], env=env, check=True, timeout=300)
        now = datetime.now(timezone.utc)
        query = (
            "http://127.0.0.1:16686/api/v3/traces?query.service_name=otel-crew-stack"
            f"&query.start_time_min={(now - timedelta(minutes=10)).isoformat()}"
            f"&query.start_time_max={(now + timedelta(minutes=1)).isoformat()}"
        ).replace("+", "%2B")
        for _ in range(60):
            try:
                with urllib.request.urlopen(query, timeout=5) as answer:
                    body = json.load(answer)
                break
            except OSError:
                time.sleep(1)
        names = {
            span["name"]
            for resource in body["result"]["resourceSpans"]
            for scope in resource["scopeSpans"]
            for span in scope["spans"]
        }
        assert names >= DEMO_SPANS
    finally:
        subprocess.run(["docker", "compose", "down"], cwd=ROOT, check=False, timeout=300)


# -- OTLP export from the standard variables ---------------------------------------


@pytest.fixture(params=["grpc", "http/protobuf"])
def receiver(request: pytest.FixtureRequest) -> Iterator[tuple[str, GrpcReceiver | HttpReceiver]]:
    started: GrpcReceiver | HttpReceiver = (GrpcReceiver() if request.param == "grpc" else HttpReceiver()).start()
    yield request.param, started
    started.stop()


def otel_crew(
    *arguments: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "otel_crew.cli", *arguments]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)


def export_env(protocol: str, endpoint: str) -> dict[str, str]:
    # OTEL_SDK_DISABLED (set by conftest for CrewAI 0.102) would silence the demo's own provider;
    # the demo quiets CrewAI's telemetry itself.
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_EXPORTER_OTLP")}
    env.pop("OTEL_SDK_DISABLED", None)
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_EXPORTER_OTLP_HEADERS="x-tenant=crew-team",
        OTEL_SERVICE_NAME="nightly-crews",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test,team=data",
    )
    return env


def test_the_demo_tree_arrives_whole_over_real_otlp(receiver: tuple[str, GrpcReceiver | HttpReceiver]) -> None:
    protocol, server = receiver
    result = otel_crew("demo", env=export_env(protocol, server.url))
    assert result.returncode == 0, result.stderr[-3000:]
    received = server.wait_for(len(DEMO_SPANS))
    assert {span.name for span in received} == DEMO_SPANS
    (root,) = [span for span in received if span.name == "demo-pipeline"]
    by_id = {span.span_id: span for span in received}
    for span in received:
        assert span.trace_id == root.trace_id, span.name
        assert span is root or span.parent_span_id in by_id, f"{span.name} lost its parent"
    assert root.parent_span_id == "" and root.attributes["otel_crew.root"] is True
    assert root.status_code == 1
    (flaky,) = [span for span in received if span.name == "invoke_workflow flaky-summary"]
    assert flaky.status_code == 2
    assert root.resource["service.name"] == "nightly-crews"
    assert root.resource["deployment.environment"] == "test" and root.resource["team"] == "data"
    assert root.headers.get("x-tenant") == "crew-team"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_collector_that_is_down_neither_breaks_nor_stalls_the_demo(protocol: str) -> None:
    started = time.monotonic()
    result = otel_crew("demo", env=export_env(protocol, f"http://127.0.0.1:{closed_port()}"))
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    assert "demo-pipeline" in result.stdout
    assert elapsed < 60  # the exporter's own timeout (10 s) bounds the flush at exit
    assert result.stderr.count("otel-crew: cannot export spans to") == 1


def test_configure_builds_a_provider_from_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry import trace

    from otel_crew import OtelCrewInstrumentor, configure, workflow

    server = HttpReceiver().start()
    for key, value in export_env("http/protobuf", server.url).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    provider = configure(agentops="off")
    try:
        from otel_crew.cli.demo_crews import research_crew

        with workflow("configured"):
            research_crew().kickoff(inputs={"topic": "a"})
        assert provider.force_flush()
        names = {span.name for span in server.wait_for(5)}
        assert {"configured", "invoke_workflow research"} <= names
        assert server.snapshot()[0].resource["service.name"] == "nightly-crews"
        assert trace.get_tracer_provider() is not provider  # not made global
    finally:
        OtelCrewInstrumentor().uninstrument()
        provider.shutdown()
        server.stop()


def test_configure_refuses_a_protocol_it_cannot_speak(monkeypatch: pytest.MonkeyPatch) -> None:
    from otel_crew import configure

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_PROTOCOL='http/json'"):
        configure(instrument=False)


# -- the otel-crew command ------------------------------------------------------------


def test_doctor_says_what_is_installed_and_whether_the_endpoint_answers() -> None:
    server = HttpReceiver().start()
    try:
        answering = otel_crew("doctor", env=export_env("http/protobuf", server.url))
    finally:
        server.stop()
    silent = otel_crew("doctor", env=export_env("grpc", f"http://127.0.0.1:{closed_port()}"))
    assert "crewai " in answering.stdout and "opentelemetry-sdk " in answering.stdout
    assert f"{server.url} answers" in answering.stdout.replace("\n", " ")
    assert answering.returncode == 0, answering.stdout
    assert "does not answer" in silent.stdout.replace("\n", " ")
    assert silent.returncode == 1


@pytest.mark.parametrize("arguments", [["--help"], ["demo", "--help"], ["doctor", "--help"]])
def test_help_everywhere(arguments: list[str]) -> None:
    result = otel_crew(*arguments)
    assert result.returncode == 0 and "usage: otel-crew" in result.stdout


def test_usage_errors_exit_2_and_a_missing_crewai_exits_3() -> None:
    assert otel_crew("bogus").returncode == 2
    script = "import sys; sys.modules['crewai'] = None; from otel_crew.cli import main; sys.exit(main(['demo']))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 3 and "needs CrewAI" in result.stdout
