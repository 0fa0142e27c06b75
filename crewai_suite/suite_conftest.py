"""The root conftest CrewAI's tests expect, for running them from the sdist, offline.

CrewAI's monorepo supplies it (the workspace conftest and ``.env.test``); the
sdist ships ``tests/`` without it. run.py copies this file next to the
extracted ``tests/`` as ``conftest.py``. It owns: fake credentials and test
flags in the environment, cassettes replayed and never recorded (VCR record
mode "none", requests matched as CrewAI matches them), a fresh storage
directory per test, and the per-test reset of CrewAI's event bus. Both runs
(plain and instrumented) use it unchanged.
"""

from __future__ import annotations

import base64
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import vcr.stubs.httpx_stubs as httpx_stubs
from vcr.request import Request

# From what CrewAI's .env.test sets for its CI: the LLM providers' fake keys and endpoints, CrewAI's flags.
_ENVIRONMENT = {
    "OPENAI_API_KEY": "fake-api-key",
    "ANTHROPIC_API_KEY": "fake-anthropic-key",
    "GEMINI_API_KEY": "fake-gemini-key",
    "AZURE_API_KEY": "fake-azure-key",
    "OPENROUTER_API_KEY": "fake-openrouter-key",
    "AWS_ACCESS_KEY_ID": "fake-aws-access-key",
    "AWS_SECRET_ACCESS_KEY": "fake-aws-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AZURE_ENDPOINT": "https://fake-azure-endpoint.openai.azure.com",
    "AZURE_OPENAI_ENDPOINT": "https://fake-azure-endpoint.openai.azure.com",
    "AZURE_OPENAI_API_KEY": "fake-azure-openai-key",
    "AZURE_API_VERSION": "2024-02-15-preview",
    "OPENAI_API_VERSION": "2024-02-15-preview",
    "OPENAI_BASE_URL": "https://api.openai.com/v1",
    "OPENAI_API_BASE": "https://api.openai.com/v1",
    "SERPER_API_KEY": "fake-serper-key",
    "CREWAI_PERSONAL_ACCESS_TOKEN": "fake-personal-token",
    "CREWAI_PLUS_URL": "https://fake.crewai.com",
    "HF_TOKEN": "fake-hf-token",
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_TESTING": "true",
    "CREWAI_TRACING_ENABLED": "false",
    # Not OTEL_SDK_DISABLED, which CrewAI's .env.test also sets: it would turn
    # the instrumented run's own TracerProvider into a no-op.
}
for _name, _value in _ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)

_AZURE_PLACEHOLDER = "fake-azure-endpoint.openai.azure.com"
_BEDROCK_PLACEHOLDER = "bedrock-runtime.vcr.amazonaws.com"
_BEDROCK_HOST = re.compile(r"^bedrock-runtime\.[a-z0-9-]+\.amazonaws\.com$")
_SECRET_HEADERS = ("authorization", "api-key", "x-api-key", "x-goog-api-key", "cookie", "set-cookie")


def _bedrock_host(host: str) -> str:
    return _BEDROCK_PLACEHOLDER if _BEDROCK_HOST.match(host) else host


def _bedrock_host_matcher(r1: Request, r2: Request) -> bool:
    """Bedrock requests match across AWS regions, as in CrewAI's conftest."""
    return _bedrock_host(r1.host or "") == _bedrock_host(r2.host or "")


def _normalise_request(request: Request) -> Request:
    """Applied before matching, too: the hosts CrewAI's cassettes were recorded under."""
    request.method = request.method.upper()
    host = request.host or ""
    if host.endswith(".openai.azure.com"):
        request.uri = request.uri.replace(host, _AZURE_PLACEHOLDER)
    elif _BEDROCK_HOST.match(host):
        request.uri = request.uri.replace(host, _BEDROCK_PLACEHOLDER)
    return request


def _vcr_request_with_binary_body(httpx_request: Any, real_request_body: Any = None, **_: Any) -> Request:
    """vcrpy's httpx stub decodes every body as UTF-8; CrewAI's file uploads are not (its conftest's fix)."""
    body = real_request_body if real_request_body is not None else httpx_request.read()
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            body = base64.b64encode(body).decode("ascii")
    return Request(httpx_request.method, str(httpx_request.url), body, dict(httpx_request.headers))


httpx_stubs._make_vcr_request = _vcr_request_with_binary_body


def pytest_recording_configure(vcr: Any, config: pytest.Config) -> None:
    vcr.register_matcher("bedrock_host", _bedrock_host_matcher)


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    """tests/a/b/test_x.py replays from tests/cassettes/a/b/, as CrewAI lays them out."""
    tests_root = Path(__file__).parent / "tests"
    relative = Path(request.path).parent.relative_to(tests_root)
    return str(tests_root / "cassettes" / relative)


@pytest.fixture(scope="module")
def vcr_config(vcr_cassette_dir: str) -> dict[str, Any]:
    return {
        "cassette_library_dir": vcr_cassette_dir,
        "record_mode": "none",  # replay only: a request no cassette holds fails the test, never reaches out
        "filter_headers": list(_SECRET_HEADERS),
        "before_record_request": _normalise_request,
        "filter_query_parameters": ["key"],
        "match_on": ["method", "scheme", "host", "port", "path"],
    }


@pytest.fixture(autouse=True)
def _fresh_storage_and_test_flags() -> Iterator[None]:
    """Each test gets its own CrewAI storage directory."""
    with tempfile.TemporaryDirectory() as storage:
        os.environ["CREWAI_STORAGE_DIR"] = storage
        os.environ["CREWAI_TESTING"] = "true"
        try:
            yield
        finally:
            os.environ.pop("CREWAI_STORAGE_DIR", None)


@pytest.fixture(autouse=True)
def _fresh_event_state() -> Iterator[None]:
    """CrewAI's event bus and event context as new for each test, as its own conftest does."""
    from crewai.events.base_events import reset_emission_counter
    from crewai.events.event_bus import crewai_event_bus
    from crewai.events.event_context import EventContextConfig, _event_context_config, _event_id_stack

    reset_emission_counter()
    _event_id_stack.set(())
    _event_context_config.set(EventContextConfig())
    yield
    with crewai_event_bus._rwlock.w_locked():
        crewai_event_bus._sync_handlers.clear()
        crewai_event_bus._async_handlers.clear()
