"""The demo pipeline: several real crews under one root, run offline.

Three crews and a handled failure under ``workflow("demo-pipeline")``: a
research crew with a tool call and an ``async_execution`` task, a hierarchical
crew whose manager delegates, a flaky crew whose model fails (the pipeline
catches it and goes on), and a writing crew.
"""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry import trace

from otel_crew.cli.demo_crews import failing_crew, hierarchical_crew, research_crew
from otel_crew.cli.local_model import LocalModelError
from otel_crew.roots.workflow import workflow

ROOT_NAME = "demo-pipeline"
Step = tuple[str, Callable[[], object]]


def demo_steps() -> list[Step]:
    return [
        (
            "research crew (tool call, async task)",
            lambda: research_crew(async_first=True).kickoff({"topic": "tracing"}),
        ),
        ("hierarchical crew (manager delegates)", lambda: hierarchical_crew().kickoff({"topic": "agents"})),
        ("flaky crew (its model fails)", lambda: failing_crew(name="flaky-summary").kickoff({"topic": "x"})),
        ("writing crew", lambda: research_crew(name="writing").kickoff({"topic": "the report"})),
    ]


def run_demo_pipeline(
    tracer_provider: trace.TracerProvider | None = None,
    on_step: Callable[[str], None] = lambda _: None,
) -> list[str]:
    """Run the demo under one root; return what happened to each step."""
    outcomes = []
    with workflow(ROOT_NAME, attributes={"demo.steps": len(demo_steps())}, tracer_provider=tracer_provider) as root:
        for title, step in demo_steps():
            on_step(title)
            try:
                step()
                outcomes.append(f"{title}: done")
            except LocalModelError as error:  # the pipeline handles this step's failure
                root.add_event("step failed and was handled", {"step": title, "error": str(error)})
                outcomes.append(f"{title}: failed, handled ({error})")
    return outcomes
