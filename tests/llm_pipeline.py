"""The issue's two-crew pipeline on real LLM traffic: five calls through CrewAI's own ``LLM``.

The researcher calls a tool (two calls), then one call for each other agent;
every reply reports 100 prompt and 20 completion tokens (``llm_server``).
"""

from __future__ import annotations

from typing import Any

from crewai import LLM, Agent, Crew, Task
from llm_server import LLMServer, ToolCall

from otel_crew.cli.demo_crews import WordCount

API_KEY = "sk-test-0123456789abcdef"
MODEL = "gpt-4o-mini"
CALLS = 5


def model(server: LLMServer, **options: Any) -> Any:
    return LLM(model=f"openai/{MODEL}", base_url=server.openai_url, api_key=API_KEY, **options)


def agent(role: str, server: LLMServer, tools: list[Any] | None = None, **options: Any) -> Agent:
    return Agent(
        role=role, goal="Do it", backstory="Able.", llm=model(server, **options), tools=tools or [], max_retry_limit=0
    )


def crew(name: str, *agents: Agent) -> Crew:
    tasks = [Task(description=f"Step {i} of {name}", expected_output="text", agent=a) for i, a in enumerate(agents)]
    return Crew(agents=list(agents), tasks=tasks, name=name)


def two_crews(server: LLMServer, **options: Any) -> tuple[Crew, Crew]:
    """Five calls: the researcher calls a tool (two calls), then one call for each other agent."""
    server.script(ToolCall("word_count", {"text": "a b c"}))
    research = crew(
        "research", agent("Researcher", server, [WordCount()], **options), agent("Writer", server, **options)
    )
    publish = crew("publish", agent("Editor", server, **options), agent("Publisher", server, **options))
    return research, publish
