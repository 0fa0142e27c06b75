"""Small real crews run by the deterministic local model: the demo's, the
benchmarks' and the tests' (a research crew with a tool call, a hierarchical
crew that delegates, a crew whose model fails)."""

from __future__ import annotations

from typing import Any

from crewai import Agent, Crew, Process, Task
from crewai.tools import BaseTool

from otel_crew.cli.local_model import local_model


class WordCount(BaseTool):
    name: str = "word_count"
    description: str = "Counts the words in a text."

    def _run(self, text: str) -> str:
        return str(len(text.split()))


class Explode(BaseTool):
    name: str = "explode"
    description: str = "Always fails."

    def _run(self, text: str) -> str:
        raise RuntimeError("tool exploded")


def researcher(**model: Any) -> Agent:
    return Agent(
        role="Researcher",
        goal="Find facts",
        backstory="Careful.",
        llm=local_model("facts", tool_name="word_count", tool_input={"text": "a b c"}, **model),
        tools=[WordCount()],
        max_retry_limit=0,
    )


def writer(**model: Any) -> Agent:
    return Agent(role="Writer", goal="Write", backstory="Clear.", llm=local_model("report", **model), max_retry_limit=0)


def research_crew(name: str = "research", async_first: bool = False, **options: Any) -> Crew:
    """Two agents, two tasks, one tool call: the researcher counts words, the writer writes."""
    first, second = researcher(), writer()
    research = Task(description="Research {topic}", expected_output="facts", agent=first, async_execution=async_first)
    write = Task(description="Write about {topic}", expected_output="report", agent=second, context=[research])
    return Crew(agents=[first, second], tasks=[research, write], name=name, **options)


def failing_crew(name: str = "failing") -> Crew:
    """One task whose model fails."""
    agent = writer(fail_with="model unavailable")
    task = Task(description="Write about {topic}", expected_output="report", agent=agent)
    return Crew(agents=[agent], tasks=[task], name=name)


def hierarchical_crew(name: str = "managed") -> Crew:
    """A manager that delegates research to a coworker."""
    manager = local_model(
        "managed",
        tool_name="Delegate work to coworker",
        tool_input={"task": "research otel", "context": "everything", "coworker": "Researcher"},
    )
    task = Task(description="Research {topic} with the team", expected_output="facts")
    return Crew(
        agents=[researcher(), writer()],
        tasks=[task],
        process=Process.hierarchical,
        manager_llm=manager,
        name=name,
    )
