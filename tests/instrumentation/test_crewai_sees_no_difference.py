"""What CrewAI can observe of its own methods is the same with otel-crew instrumented.

CrewAI's A2A support reads ``__wrapped__`` on ``agent.execute_task`` as the sign
of its own per-instance wrapper and builds that wrapper from
``agent.execute_task.__func__``: otel-crew's stand-ins must show neither, and an
A2A agent must run through them (and so be traced).
"""

from __future__ import annotations

import inspect
import warnings

import pytest
from conftest import CREWAI, Spans
from crewai import Agent, Crew, Task

from otel_crew.cli.demo_crews import WordCount
from otel_crew.cli.local_model import local_model

pytestmark = pytest.mark.crewai

AGENT_METHODS = ["execute_task", "aexecute_task"]


def an_agent(**options: object) -> Agent:
    return Agent(role="Analyst", goal="Answer", backstory="Terse.", llm=local_model("answer"), **options)


@pytest.mark.parametrize("method", AGENT_METHODS)
def test_an_agent_method_shows_no_wrapper(instrumented: Spans, method: str) -> None:
    if method not in vars(Agent):
        pytest.skip(f"Agent.{method} is not in this CrewAI line")
    bound = getattr(an_agent(), method)
    assert not hasattr(bound, "__wrapped__")
    assert bound.__func__ is vars(Agent)[method]  # the stand-in itself, so CrewAI's own wrappers call through it


@pytest.mark.skipif(CREWAI is None or CREWAI < (1, 0), reason="Agent.aexecute_task is a 1.x method")
def test_stand_ins_keep_name_signature_and_coroutine_kind(instrumented: Spans) -> None:
    stand_in = vars(Agent)["aexecute_task"]
    assert stand_in.__name__ == "aexecute_task"
    assert inspect.iscoroutinefunction(stand_in)
    assert list(inspect.signature(stand_in).parameters)[:2] == ["self", "task"]
    assert not inspect.iscoroutinefunction(vars(Agent)["execute_task"])


def test_classmethods_stay_classmethods(spans: Spans) -> None:
    from otel_crew.instrumentation.patches import stand_in

    class Owner:
        @classmethod
        def build(cls, value: int) -> tuple[type, int]:
            return cls, value

    seen = []

    def observe(wrapped, instance, args, kwargs):  # type: ignore[no-untyped-def]
        seen.append(instance)
        return wrapped(*args, **kwargs)

    original = vars(Owner)["build"]
    Owner.build = stand_in(original, observe)  # type: ignore[method-assign]
    assert Owner.build(3) == (Owner, 3)
    assert seen == [Owner]
    Owner.build = original  # type: ignore[method-assign]
    assert Owner.build(4) == (Owner, 4)
    assert seen == [Owner]


def _a2a_agent() -> Agent:
    a2a = pytest.importorskip("a2a", reason="CrewAI's A2A support needs the a2a-sdk (crewai[a2a])")
    assert a2a is not None
    from crewai.a2a.config import A2AConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # A2AConfig's own deprecation notice
        return an_agent(a2a=A2AConfig(endpoint="http://127.0.0.1:9/agent"), tools=[WordCount()])


@pytest.mark.skipif(CREWAI is None or CREWAI < (1, 0), reason="A2A agents exist on CrewAI 1.x")
def test_an_a2a_agent_is_wrapped_by_crewai_around_otel_crew(instrumented: Spans) -> None:
    agent = _a2a_agent()
    assert hasattr(agent.execute_task, "__wrapped__")  # CrewAI's own A2A wrapper, as without otel-crew
    assert agent.execute_task.__wrapped__ is vars(Agent)["execute_task"]


@pytest.mark.skipif(CREWAI is None or CREWAI < (1, 0), reason="A2A agents exist on CrewAI 1.x")
def test_an_a2a_agent_is_traced_like_any_other(instrumented: Spans) -> None:
    agent = _a2a_agent()
    # With no A2A peers configured, CrewAI's A2A wrapper calls the method it
    # captured at construction: otel-crew's stand-in, which makes the span.
    object.__setattr__(agent, "a2a", None)
    task = Task(description="Answer briefly", expected_output="an answer", agent=agent)
    Crew(agents=[agent], tasks=[task], name="a2a").kickoff()
    (kickoff,) = instrumented.named("invoke_workflow a2a")
    assert [name for _, name in instrumented.tree(kickoff)] == [
        "invoke_workflow a2a",
        "invoke_agent Analyst",
        "chat deterministic",
    ]
