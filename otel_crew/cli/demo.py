"""The demo pipeline: a small CrewAI Flow and two more crews under one root, run offline.

Under ``workflow("demo-pipeline")``: a Flow of two steps, each kicking off a
crew (a research crew with a tool call and an ``async_execution`` task, then
a writing crew); a hierarchical crew whose manager delegates; and a flaky crew
whose model fails (the pipeline catches it and goes on). With otel-crew's Flow
instrumentation the flow run and its steps are spans between the root and the
crews; without it the crews sit right under the root. One trace either way.

``quiet_framework()`` keeps CrewAI's, AgentOps' and the exporters' own output
off the demo's screen while the demo's crews run; it exists for this
process's own pipeline, never for a user's code.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Iterator
from typing import Any

from opentelemetry import trace

from otel_crew.cli.demo_crews import failing_crew, hierarchical_crew, research_crew
from otel_crew.cli.local_model import LocalModelError
from otel_crew.roots.workflow import workflow

ROOT_NAME = "demo-pipeline"
FLOW_CLASS_NAME = "ReportFlow"
STEP_TITLES = (
    "a flow of two steps: research, then write (two crews)",
    "a hierarchical crew (the manager delegates)",
    "a flaky crew (its model fails, the pipeline goes on)",
)


def report_flow() -> Any:
    """A two-step Flow: ``research`` kicks off the research crew, ``write`` the writing crew
    (both built here, so that the spans time the work, not the building)."""
    from crewai.flow.flow import Flow, listen, start

    researching, writing = research_crew(async_first=True), research_crew(name="writing")

    class ReportFlow(Flow):  # type: ignore[type-arg]
        @start()
        def research(self) -> str:
            return str(researching.kickoff(inputs={"topic": "tracing"}))

        @listen(research)
        def write(self, facts: str) -> str:
            return str(writing.kickoff(inputs={"topic": f"the report on {facts[:20]}"}))

    return ReportFlow()


def run_demo_pipeline(
    tracer_provider: trace.TracerProvider | None = None,
    on_step: Callable[[str], None] = lambda _: None,
) -> list[str]:
    """Run the demo under one root; return the failures the pipeline handled."""
    handled = []
    flow, managed, flaky = (
        report_flow(),
        hierarchical_crew(),
        failing_crew(name="flaky-summary"),
    )  # the root times the run
    with workflow(ROOT_NAME, attributes={"demo.steps": len(STEP_TITLES)}, tracer_provider=tracer_provider) as root:
        flow_title, managed_title, flaky_title = STEP_TITLES
        on_step(flow_title)
        flow.kickoff()
        on_step(managed_title)
        managed.kickoff(inputs={"topic": "agents"})
        on_step(flaky_title)
        try:
            flaky.kickoff(inputs={"topic": "x"})
        except LocalModelError as error:  # the pipeline handles this step's failure
            root.add_event("step failed and was handled", {"step": "flaky-summary", "error": str(error)})
            handled.append(f"flaky-summary ({error})")
    return handled


@contextlib.contextmanager
def quiet_framework() -> Iterator[io.StringIO]:
    """Everything the frameworks print or log while the block runs goes into
    the yielded buffer (shown only if the demo itself fails)."""
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    root_logger = logging.getLogger()
    root_logger.addHandler(handler)  # instead of logging's last-resort print to stderr
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            yield captured
    finally:
        root_logger.removeHandler(handler)
