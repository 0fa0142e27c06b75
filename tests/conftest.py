"""Shared test set-up: CrewAI offline and quiet, one SDK tracer provider per test."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest
from agentops_server import AgentOpsStandIn
from llm_server import LLMServer
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

os.environ["CREWAI_DISABLE_TELEMETRY"] = "true"
os.environ["CREWAI_TRACING_ENABLED"] = "false"
os.environ.setdefault("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "NO_CONTENT")
# LiteLLM (CrewAI 0.130 and 0.102's LLM; 1.x's with is_litellm=True) fetches its model cost map from the
# network on first import unless told to use the copy it ships: the suite stays offline.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
# CrewAI's task-output store differs between 0.x and 1.x: one per run.
os.environ["CREWAI_STORAGE_DIR"] = tempfile.mkdtemp(prefix="otel-crew-tests-")
# The open-roots journal of every test process (children inherit it) stays out of the user's home.
os.environ["OTEL_CREW_STATE_DIR"] = tempfile.mkdtemp(prefix="otel-crew-state-")


def crewai_version() -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in version("crewai").split(".")[:3])
    except PackageNotFoundError:
        return None


CREWAI = crewai_version()

# The environment without CrewAI runs what needs none (workflow roots, the
# processors, instrument()'s message); the CrewAI lines run everything.
NEEDS_CREWAI = [
    "agentops_sessions",
    "instrumentation",
    "test_shipping.py",
    "test_llm_server.py",  # the server is checked with the openai and anthropic SDKs, which come with CrewAI
]
collect_ignore = NEEDS_CREWAI if CREWAI is None else []

# AgentOps (installed in every test environment) talks only to a loopback
# stand-in, whoever initialises it: the tests, or CrewAI 0.105+ at each kickoff.
# Its address is fixed here, before either reads the variables; it serves from
# the session fixture ``agentops_stand_in`` on. Under pytest-xdist each worker
# process imports this module: its own stand-in on its own ephemeral port, its
# own variables, inherited by the scenarios it starts.
AGENTOPS = AgentOpsStandIn()
os.environ["AGENTOPS_API_ENDPOINT"] = AGENTOPS.url
os.environ["AGENTOPS_EXPORTER_ENDPOINT"] = f"{AGENTOPS.url}/v1/traces"
os.environ["AGENTOPS_API_KEY"] = "loopback-api-key"
os.environ["AGENTOPS_LOG_SESSION_REPLAY_URL"] = "false"

# CrewAI before 0.105 honours only OTEL_SDK_DISABLED for its phone-home
# telemetry. That variable also silences every SDK provider built while it is
# set, so the providers that must record are built with it lifted.
if CREWAI is not None and CREWAI < (0, 105):
    os.environ["OTEL_SDK_DISABLED"] = "true"


@contextmanager
def sdk_enabled() -> Iterator[None]:
    """Build recording SDK objects inside this block."""
    saved = os.environ.pop("OTEL_SDK_DISABLED", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["OTEL_SDK_DISABLED"] = saved


class Spans:
    """A tracer provider with an in-memory exporter, and ways to read the tree."""

    def __init__(self, first_processor: SpanProcessor | None = None) -> None:
        self.exporter = InMemorySpanExporter()
        with sdk_enabled():
            self.provider = TracerProvider()
        if first_processor is not None:  # before the exporter, so that it sees roots it ends
            self.provider.add_span_processor(first_processor)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def finished(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.finished() if span.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, f"expected one span {name!r}, found {len(found)}: {self.names()}"
        return found[0]

    def names(self) -> list[str]:
        return sorted(span.name for span in self.finished())

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        assert parent.context is not None
        return sorted(
            (s for s in self.finished() if s.parent is not None and s.parent.span_id == parent.context.span_id),
            key=lambda s: s.start_time or 0,
        )

    def tree(self, root: ReadableSpan) -> list[tuple[int, str]]:
        """(depth, name) of ``root`` and every span below it, depth first."""
        rows = [(0, root.name)]
        for child in self.children(root):
            rows += [(depth + 1, name) for depth, name in self.tree(child)]
        return rows


@pytest.fixture(scope="session", autouse=True)
def agentops_stand_in() -> Iterator[AgentOpsStandIn]:
    """The AgentOps stand-in serving for the run: CrewAI 0.105+ initialises AgentOps at every kickoff, so
    every test that runs a crew needs it."""
    AGENTOPS.start()
    yield AGENTOPS
    AGENTOPS.stop()


class OncePerRun:
    """Results computed by one test process of the run and read by the others: pytest-xdist's workers share
    the parent of their temporary folders, so a scenario whose report the tests of several workers check
    (each worker may get some of them) starts its process once. Results are JSON."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def __call__(self, key: str, compute: Callable[[], Any]) -> Any:
        stored = self._folder / f"{key}.json"
        with (self._folder / f"{key}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when closed; a second worker waits, then reads
            if not stored.exists():
                stored.write_text(json.dumps(compute()))
            return json.loads(stored.read_text())


@pytest.fixture(scope="session")
def once_per_run(tmp_path_factory: pytest.TempPathFactory) -> OncePerRun:
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if "PYTEST_XDIST_WORKER" in os.environ else base  # a worker's base is popen-gwN
    folder = shared / "once-per-run"
    folder.mkdir(exist_ok=True)
    return OncePerRun(folder)


OUR_THREADS = "otel-crew-"


@pytest.fixture(autouse=True)
def no_thread_of_ours_left() -> Iterator[None]:
    """Fails the test (and so the run) when it leaves a thread of ours running: every thread named
    ``otel-crew-*`` it started must have ended once its teardown is over (shutdown joins them)."""
    before = set(threading.enumerate())
    yield
    left = [thread for thread in threading.enumerate() if thread not in before and thread.name.startswith(OUR_THREADS)]
    for thread in left:
        thread.join(timeout=5)  # a thread told to stop may still be on its way out
    if alive := sorted(thread.name for thread in left if thread.is_alive()):
        pytest.fail(f"the test left threads of otel-crew running: {', '.join(alive)}", pytrace=False)


@pytest.fixture(autouse=True)
def fresh_context() -> Iterator[None]:
    """Each test starts with nothing current, and nothing it attached (AgentOps
    attaches its session span and never detaches it) leaks into the next."""
    token = otel_context.attach(Context())
    try:
        yield
    finally:
        otel_context.detach(token)


@pytest.fixture
def llm_server() -> Iterator[LLMServer]:
    """A loopback OpenAI-compatible (and Anthropic Messages) server for the test: ``script(...)`` its replies."""
    server = LLMServer().start()
    yield server
    server.stop()


@pytest.fixture
def spans() -> Iterator[Spans]:
    recorded = Spans()
    yield recorded
    recorded.provider.shutdown()


@contextmanager
def instrumenting(spans: Spans, **options: Any) -> Iterator[Spans]:
    """CrewAI instrumented into ``spans``' provider for the block."""
    from otel_crew import OtelCrewInstrumentor

    instrumentor = OtelCrewInstrumentor()
    instrumentor.instrument(tracer_provider=spans.provider, **options)
    try:
        yield spans
    finally:
        instrumentor.uninstrument()


@pytest.fixture
def instrumented(spans: Spans) -> Iterator[Spans]:
    """CrewAI instrumented into the test's own provider."""
    with instrumenting(spans) as instrumented_spans:
        yield instrumented_spans
