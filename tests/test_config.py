"""The OTEL_* variables, parsed once (``otel_crew.config``), and ``configure()``:
one line per bad value, the SDK's precedence, real OTLP export, and a second
``configure()`` that still traces crews."""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CREWAI
from otlp_receivers import HttpReceiver

from otel_crew import config
from otel_crew.config import ConfigError, config_problems, configure, export_settings

needs_crewai = pytest.mark.skipif(CREWAI is None, reason="runs real crews")


@pytest.fixture(autouse=True)
def clean_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("OTEL_EXPORTER_OTLP") or name in ("OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)  # conftest sets it for CrewAI 0.102


BAD_VALUES = [
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "bogus", "allowed values are grpc and http/protobuf"),
    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc/json", "allowed values are grpc and http/protobuf"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "Python OTLP exporter has no JSON encoding; use http/protobuf"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317", "expected a URL with http:// or https://"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://", "expected a URL with http:// or https://"),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:99999", "expected a URL with http:// or https://"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "ten", "expected a positive number of seconds"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "-1", "expected a positive number of seconds"),
    ("OTEL_TRACES_EXPORTER", "jaeger", "otel-crew knows otlp, console and none"),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "zip", "allowed values are gzip, deflate and none"),
]


@pytest.mark.parametrize(("variable", "value", "allowed"), BAD_VALUES, ids=[f"{v}={x}" for v, x, _ in BAD_VALUES])
def test_a_bad_value_is_one_line_naming_variable_value_and_what_is_allowed(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, allowed: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        export_settings()
    message = str(raised.value)
    assert message.startswith(f"{variable}={value!r}: ") and allowed in message
    assert "\n" not in message
    assert config_problems() == [message]  # doctor reads the same check


def test_configure_raises_value_error_for_a_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_PROTOCOL='http/json'"):
        configure(instrument=False)


def test_malformed_headers_are_named_without_showing_their_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=crew,authorization")
    with pytest.raises(ConfigError) as raised:
        export_settings()
    assert str(raised.value) == (
        "OTEL_EXPORTER_OTLP_HEADERS: entry 2 is not key=value (values not shown); expected k1=v1,k2=v2"
    )
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=crew%20team, Authorization=Bearer%20s3cret")
    settings = export_settings()
    assert dict(settings.headers) == {"x-tenant": "crew team", "authorization": "Bearer s3cret"}
    assert "s3cret" not in repr(settings)


def test_several_bad_variables_each_get_their_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "bogus")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "nowhere")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")
    problems = config_problems()
    assert [problem.split("=")[0] for problem in problems] == [
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]


def test_defaults_and_the_http_path(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = export_settings()
    assert (settings.protocol, settings.endpoint, settings.endpoint_named) == ("grpc", "http://localhost:4317", False)
    assert settings.exporters == ("otlp",) and settings.timeout_s == 10.0
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    assert export_settings().traces_url == "http://localhost:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector.example:4318/")
    assert export_settings().traces_url == "https://collector.example:4318/v1/traces"
    # A signal-specific endpoint is used as it is, and wins over the generic one.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces.example:9999/custom")
    assert export_settings().traces_url == "http://traces.example:9999/custom"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "2.5")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console, otlp")
    assert export_settings().timeout_s == 2.5 and export_settings().exporters == ("console", "otlp")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert export_settings().exporters == () and not export_settings().exports_otlp


def test_service_name_follows_the_sdk_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes,team=data")
    assert export_settings().service_name == "from-attributes"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-service-name")
    assert export_settings().service_name == "from-service-name"


# -- configure(): real export, and a second call ---------------------------------------


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpReceiver]:
    server = HttpReceiver().start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", server.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=crew-team")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "nightly-crews")
    yield server
    server.stop()


@pytest.fixture
def configured() -> Iterator[list[object]]:
    """Providers configure() returned in the test, uninstrumented and shut down after it."""
    from otel_crew import OtelCrewInstrumentor

    made: list[object] = []
    yield made
    OtelCrewInstrumentor().uninstrument()
    for provider in made:
        provider.shutdown()  # type: ignore[attr-defined]


def run_pipeline(name: str) -> None:
    from otel_crew import workflow
    from otel_crew.cli.demo_crews import research_crew

    with workflow(name):
        research_crew().kickoff(inputs={"topic": "a"})


def names(server: HttpReceiver, count: int) -> set[str]:
    return {span.name for span in server.wait_for(count)}


@needs_crewai
def test_configure_exports_crews_from_the_variables(receiver: HttpReceiver, configured: list[object]) -> None:
    from opentelemetry import trace

    provider = configure(agentops="off")
    configured.append(provider)
    run_pipeline("configured")
    assert provider.force_flush()
    assert {"configured", "invoke_workflow research"} <= names(receiver, 5)
    (first, *_) = receiver.snapshot()
    assert first.resource["service.name"] == "nightly-crews" and first.headers["x-tenant"] == "crew-team"
    assert trace.get_tracer_provider() is not provider  # not made global


@needs_crewai
def test_a_second_configure_returns_the_same_provider_still_traced(
    receiver: HttpReceiver, configured: list[object]
) -> None:
    first = configure(agentops="off")
    second = configure(agentops="off")
    configured.append(first)
    assert second is first
    run_pipeline("second-call")
    assert second.force_flush()
    assert {"second-call", "invoke_workflow research"} <= names(receiver, 5)


@needs_crewai
def test_configure_with_other_variables_retargets_crews_to_a_new_provider(
    receiver: HttpReceiver, configured: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = configure(agentops="off")
    other = HttpReceiver().start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", other.url)
        second = configure(agentops="off")
        configured += [first, second]
        assert second is not first and first.is_shut_down  # type: ignore[attr-defined]
        run_pipeline("retargeted")
        assert second.force_flush()
        assert {"retargeted", "invoke_workflow research"} <= names(other, 5)
        assert not [span for span in receiver.snapshot() if span.name == "retargeted"]
    finally:
        other.stop()


@needs_crewai
def test_configure_after_shutdown_builds_a_new_traced_provider(
    receiver: HttpReceiver, configured: list[object]
) -> None:
    first = configure(agentops="off")
    first.shutdown()
    second = configure(agentops="off")
    configured.append(second)
    assert second is not first
    run_pipeline("after-shutdown")
    assert second.force_flush()
    assert "after-shutdown" in names(receiver, 5)


@needs_crewai
def test_configure_says_so_when_crewai_is_instrumented_elsewhere(
    receiver: HttpReceiver, configured: list[object], caplog: pytest.LogCaptureFixture
) -> None:
    from conftest import Spans

    from otel_crew import OtelCrewInstrumentor

    elsewhere = Spans()
    OtelCrewInstrumentor().instrument(tracer_provider=elsewhere.provider, agentops="off")
    with caplog.at_level(logging.WARNING, logger=config.__name__):
        configured.append(configure(agentops="off"))
    assert [record.getMessage() for record in caplog.records if record.name == config.__name__] == [
        "otel-crew: configure(): CrewAI is already instrumented into another tracer provider, so this one gets "
        "no crew spans; call OtelCrewInstrumentor().uninstrument() before configure()"
    ]
    elsewhere.provider.shutdown()


PACKAGE = Path(config.__file__).resolve().parent
VARIABLE = re.compile(r"OTEL_[A-Z_]+")


def test_the_configuration_page_names_exactly_the_variables_config_reads() -> None:
    tree = ast.parse(Path(config.__file__).read_text())
    read = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and VARIABLE.fullmatch(node.value)
    }
    page = (PACKAGE.parent / "docs" / "configuration.md").read_text()
    named = set(re.findall(r"`(OTEL_[A-Z_]+)[`=]", page))
    assert read == named


def test_no_other_module_reads_an_otel_variable() -> None:
    reading = re.compile(r"""(environ\.get\(|getenv\(|environ\[)\s*["']OTEL_""")
    readers = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "config.py" and reading.search(path.read_text())
    ]
    assert readers == []
