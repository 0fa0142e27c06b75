"""Shipping: the Compose stack and Collector configs, checked without Docker
(and run for real where a Docker engine exists). The variables, ``configure()``
and the ``otel-crew`` command are tested in test_config.py and tests/cli/."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

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


# The Compose file and the Collector configs are files of this repository: nothing here can differ between
# CrewAI lines (the demo the Docker test sends runs on every line in tests/cli/).
pytestmark = pytest.mark.one_line


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


def test_only_the_collector_and_jaeger_run_and_the_collector_starts_after_jaeger() -> None:
    services = compose()["services"]
    assert set(services) == {"collector", "jaeger"}
    assert services["collector"]["depends_on"] == ["jaeger"]


def mebibytes(size: str) -> float:
    number, unit = re.fullmatch(r"(\d+)\s*([kmg]?)i?b?", size.strip().lower()).groups()  # type: ignore[union-attr]
    return float(number) * {"k": 1 / 1024, "m": 1, "g": 1024, "": 1 / 1024**2}[unit]


def test_the_collector_container_limit_matches_its_memory_limiter() -> None:
    collector = compose()["services"]["collector"]
    limiter = load(MAIN_CONFIG)["processors"]["memory_limiter"]
    # Percentages are of the container's limit: without one they would be of the host's memory.
    assert set(limiter) == {"check_interval", "limit_percentage", "spike_limit_percentage"}
    container = mebibytes(collector["mem_limit"])
    soft_limit = mebibytes(collector["environment"]["GOMEMLIMIT"])
    assert abs(soft_limit - container * limiter["limit_percentage"] / 100) < 1
    assert limiter["spike_limit_percentage"] < limiter["limit_percentage"]


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
    "gen_ai.usage.reasoning.output_tokens",
    "otel_crew.usage.input_tokens",
    "otel_crew.usage.output_tokens",
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
