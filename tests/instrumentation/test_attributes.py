"""Attribute extraction: allow-lists only, bounded, never raising, never a secret."""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Iterator

import pytest
from conftest import Spans, instrumenting
from pydantic import BaseModel

from otel_crew import OtelCrewInstrumentor, workflow
from otel_crew.cli.demo_crews import research_crew
from otel_crew.instrumentation.attributes import CONTENT_LIMIT, content_text

pytestmark = pytest.mark.crewai

SECRET_IN_ENV = "sk-env-0123456789abcdef-secret"
SECRET_ON_MODEL = "sk-model-abcdef0123456789-secret"


class Payload(BaseModel):
    name: str


@pytest.fixture
def capturing(spans: Spans, monkeypatch: pytest.MonkeyPatch) -> Iterator[Spans]:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    with instrumenting(spans) as instrumented:
        yield instrumented


def cycle() -> list[object]:
    looped: list[object] = []
    looped.append(looped)
    return looped


AWKWARD_VALUES = {
    "datetime": datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc),
    "uuid": uuid.uuid4(),
    "pydantic": Payload(name="x"),
    "bytes": b"\x00\x01binary",
    "cycle": cycle(),
    "huge": "x" * 10_000_000,
}


def outcome(inputs: dict[str, object]) -> tuple[str, str]:
    """What a kickoff did: its answer, or the exception it raised."""
    try:
        return ("returned", research_crew().kickoff(inputs=inputs).raw)
    except Exception as error:
        return ("raised", f"{type(error).__name__}: {error}")


@pytest.mark.parametrize("kind", sorted(AWKWARD_VALUES))
def test_awkward_inputs_kick_off_exactly_as_without_otel_crew(
    kind: str, spans: Spans, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = {"topic": "otel", "extra": AWKWARD_VALUES[kind]}
    bare = outcome(inputs)
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    instrumentor = OtelCrewInstrumentor()
    instrumentor.instrument(tracer_provider=spans.provider)
    try:
        observed = outcome(inputs)
    finally:
        instrumentor.uninstrument()
    assert observed == bare
    kickoff = spans.one("invoke_workflow research")
    assert kickoff.attributes is not None
    captured = kickoff.attributes["crewai.kickoff.inputs"]
    assert isinstance(captured, str) and len(captured) <= CONTENT_LIMIT
    assert captured.startswith('{"topic": "otel"')


def test_content_is_captured_when_asked(capturing: Spans) -> None:
    research_crew().kickoff(inputs={"topic": "otel"})
    kickoff = capturing.one("invoke_workflow research")
    assert kickoff.attributes is not None
    assert json.loads(str(kickoff.attributes["crewai.kickoff.inputs"])) == {"topic": "otel"}
    assert str(kickoff.attributes["crewai.kickoff.output"]).startswith("report")
    agent = capturing.one("invoke_agent Writer")
    assert agent.attributes is not None and str(agent.attributes["crewai.task.output"]).startswith("report")
    tool = capturing.one("execute_tool word_count")
    assert tool.attributes is not None
    # CrewAI 0.130 adds its own security_context to the arguments
    assert json.loads(str(tool.attributes["gen_ai.tool.call.arguments"]))["text"] == "a b c"
    assert tool.attributes["gen_ai.tool.call.result"] == "3"


def test_no_content_without_the_variable(instrumented: Spans) -> None:
    research_crew().kickoff(inputs={"topic": "private"})
    for span in instrumented.finished():
        assert span.attributes is not None
        assert not {"crewai.kickoff.inputs", "crewai.kickoff.output", "crewai.task.output"} & set(span.attributes)
        assert "gen_ai.tool.call.arguments" not in span.attributes


def test_no_attribute_ever_holds_an_api_key(capturing: Spans, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_IN_ENV)
    crew = research_crew()
    for agent in crew.agents:
        object.__setattr__(agent.llm, "api_key", SECRET_ON_MODEL)
    with workflow("p", attributes={"team": "data"}):
        crew.kickoff(inputs={"topic": "otel"})
    assert len(capturing.finished()) == 8  # the root, the kickoff, 2 agents, a tool and 3 LLM calls
    for span in capturing.finished():
        text = json.dumps(dict(span.attributes or {}), default=str)
        assert SECRET_IN_ENV not in text and SECRET_ON_MODEL not in text, span.name


def test_content_text_never_raises_and_stays_bounded() -> None:
    class Unprintable:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert content_text(Unprintable()) == '"<Unprintable>"'
    assert content_text({"k": Unprintable()}) == '{"k": "<Unprintable>"}'
    assert len(content_text("y" * 100_000) or "") == CONTENT_LIMIT
    deep: dict[str, object] = {}
    node = deep
    for _ in range(100):
        node["next"] = {}
        node = node["next"]  # type: ignore[assignment]
    assert content_text(deep) is not None
