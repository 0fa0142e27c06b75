"""The demo's trace tree fits an 80-column terminal; the spans keep every word."""

from __future__ import annotations

import io

from conftest import Spans
from opentelemetry.trace import Status, StatusCode
from rich.console import Console

from otel_crew.cli.tree import WIDTH, trace_trees

LONG = "LocalModelError: " + "the model answered with something this demo cannot read " * 3


def test_a_long_error_text_is_cut_with_an_ellipsis_at_every_depth(spans: Spans) -> None:
    tracer = spans.provider.get_tracer("test")
    with (
        tracer.start_as_current_span("pipeline"),
        tracer.start_as_current_span("invoke_workflow flaky"),
        tracer.start_as_current_span("invoke_agent Writer") as agent,
    ):
        agent.set_status(Status(StatusCode.ERROR, LONG))
    screen = io.StringIO()
    console = Console(file=screen, width=200, color_system=None)
    for tree in trace_trees(spans.finished()):
        console.print(tree)
    agent_line = screen.getvalue().splitlines()[-1]
    assert len(agent_line) == WIDTH
    assert agent_line.endswith("…") and "LocalModelError: the model answered" in agent_line
    assert spans.named("invoke_agent Writer")[0].status.description == LONG
