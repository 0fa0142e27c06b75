"""CrewAI's baggage stays in the process: what a real instrumented HTTP client
(httpx) sends from inside a flow step to a loopback server, with and without
otel-crew."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from conftest import CREWAI, Spans, instrumenting

if CREWAI is None or CREWAI < (1,):
    pytest.skip("CrewAI puts its flow inputs and crew context into baggage from 1.x", allow_module_level=True)

import httpx
from crewai import Agent, Crew, Task
from crewai.flow.flow import Flow, start
from crewai.tools import BaseTool
from opentelemetry import baggage, propagate
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_crew.cli.local_model import local_model
from otel_crew.instrumentation.baggage_guard import CREWAI_BAGGAGE_KEYS

pytestmark = pytest.mark.crewai

FLOW_INPUTS = {"customer_email": "ann@example.com", "api_key": "sk-123"}
USER_ENTRY = "tenant=acme"


class Loopback:
    """An HTTP server on 127.0.0.1 that records the ``baggage`` header of each request."""

    def __init__(self) -> None:
        received: list[str | None] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                received.append(self.headers.get("baggage"))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def server() -> Iterator[Loopback]:
    loopback = Loopback()
    yield loopback
    loopback.stop()


@pytest.fixture
def httpx_instrumented(spans: Spans) -> Iterator[None]:
    HTTPXClientInstrumentor().instrument(tracer_provider=spans.provider)
    yield
    HTTPXClientInstrumentor().uninstrument()


@pytest.fixture
def user_baggage() -> Iterator[None]:
    token = otel_context.attach(baggage.set_baggage("tenant", "acme"))
    yield
    otel_context.detach(token)


def entries(header: str | None) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in (header or "").split(",") if pair)


class CallServer(BaseTool):
    name: str = "call_server"
    description: str = "Calls the server."
    url: str

    def _run(self, text: str) -> str:
        return str(httpx.get(self.url).status_code)


def calling_crew(url: str) -> Crew:
    """A crew whose agent calls the server through a tool: inside the crew's kickoff."""
    agent = Agent(
        role="Caller",
        goal="Call",
        backstory="Direct.",
        llm=local_model("called", tool_name="call_server", tool_input={"text": "x"}),
        tools=[CallServer(url=url)],
        max_retry_limit=0,
    )
    task = Task(description="Call the server", expected_output="status", agent=agent)
    return Crew(agents=[agent], tasks=[task], name="caller")


def step_calls_the_server(url: str) -> Flow[Any]:
    class CallsOut(Flow[Any]):
        @start()
        def call(self) -> int:
            return httpx.get(url).status_code

    return CallsOut()


def step_kicks_off_a_crew(crew: Crew) -> Flow[Any]:
    class KicksOffCrew(Flow[Any]):
        @start()
        def run_crew(self) -> str:
            return crew.kickoff().raw

    return KicksOffCrew()


def headers_without_with_and_after(spans: Spans, server: Loopback, run: Any) -> list[str | None]:
    """The header received from ``run()``: bare CrewAI, instrumented, uninstrumented again."""
    run()
    with instrumenting(spans, agentops="off"):
        run()
    run()
    assert len(server.received) == 3
    return server.received


@pytest.mark.usefixtures("httpx_instrumented", "user_baggage")
def test_a_flow_step_sends_the_users_baggage_and_none_of_crewais(spans: Spans, server: Loopback) -> None:
    def run() -> None:
        step_calls_the_server(server.url).kickoff(inputs=FLOW_INPUTS)

    bare, instrumented, after = headers_without_with_and_after(spans, server, run)
    assert {"flow_inputs", "flow_input_files", "tenant"} <= set(entries(bare))  # the leak being closed
    assert "sk-123" in str(bare)
    assert instrumented == USER_ENTRY
    assert after == bare


@pytest.mark.usefixtures("httpx_instrumented", "user_baggage")
def test_a_crew_kicked_off_in_a_flow_step_sends_none_of_crewais_baggage(spans: Spans, server: Loopback) -> None:
    crew = calling_crew(server.url)  # one crew, so that its crew_context is the same each run

    def run() -> None:
        step_kicks_off_a_crew(crew).kickoff(inputs=FLOW_INPUTS)

    bare, instrumented, after = headers_without_with_and_after(spans, server, run)
    assert {"flow_inputs", "flow_input_files", "crew_context", "tenant"} <= set(entries(bare))
    assert instrumented == USER_ENTRY
    assert after == bare
    assert spans.named("execute_tool call_server")


@pytest.fixture
def global_textmap() -> Iterator[None]:
    saved = propagate.get_global_textmap()
    yield
    propagate.set_global_textmap(saved)


def crewai_context() -> otel_context.Context:
    ctx = baggage.set_baggage("tenant", "acme")
    ctx = baggage.set_baggage("flow_inputs", FLOW_INPUTS, context=ctx)
    return baggage.set_baggage("crew_context", object(), context=ctx)


@pytest.mark.usefixtures("global_textmap")
def test_propagators_set_after_instrument_and_explicit_contexts_are_guarded_too(spans: Spans) -> None:
    ctx = crewai_context()
    with instrumenting(spans, agentops="off"):
        propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()]))
        carriers: list[dict[str, str]] = [{}, {}, {}]
        propagate.inject(carriers[0], context=ctx)
        W3CBaggagePropagator().inject(carriers[1], ctx)
        token = otel_context.attach(ctx)
        try:
            propagate.inject(carriers[2])
        finally:
            otel_context.detach(token)
    assert [carrier.get("baggage") for carrier in carriers] == [USER_ENTRY] * 3
    assert baggage.get_baggage("flow_inputs", ctx) is FLOW_INPUTS  # the caller's context is not altered
    plain: dict[str, str] = {}
    propagate.inject(plain, context=ctx)
    assert set(entries(plain["baggage"])) == {"tenant", "flow_inputs", "crew_context"}


def test_uninstrument_puts_back_the_propagators_inject_exactly(spans: Spans) -> None:
    before = vars(W3CBaggagePropagator)["inject"]
    with instrumenting(spans, agentops="off"):
        assert vars(W3CBaggagePropagator)["inject"] is not before
    assert vars(W3CBaggagePropagator)["inject"] is before


def test_every_baggage_key_crewai_sets_is_guarded() -> None:
    spec = find_spec("crewai")
    assert spec is not None and spec.submodule_search_locations
    source = "\n".join(path.read_text() for path in Path(spec.submodule_search_locations[0]).rglob("*.py"))
    keys = set(re.findall(r"set_baggage\(\s*[\"']([^\"']+)[\"']", source))
    assert {"flow_inputs", "flow_input_files", "crew_context"} <= keys
    assert keys <= CREWAI_BAGGAGE_KEYS
