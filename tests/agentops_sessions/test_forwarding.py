"""In this process, with the real AgentOps SDK on the loopback stand-in: re-parenting past the user's own
spans, a flow run's steps and crews, and the delivery report and metric of each session."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from conftest import AGENTOPS, Spans, sdk_enabled
from flow_examples import TwoCrews
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from test_session_processor import agentops_sdk, bridging  # noqa: F401  (agentops_sdk: a fixture)

from otel_crew import workflow
from otel_crew.agentops_sessions.processor import AgentOpsSessionProcessor
from otel_crew.cli.demo_crews import research_crew

pytestmark = pytest.mark.crewai


def received_in(trace_id: int) -> list[Any]:
    AGENTOPS.delivered()  # AgentOps' exporter flushed: what it had is here
    return [span for span in AGENTOPS.snapshot() if span.trace_id == f"{trace_id:032x}"]


def test_a_span_of_the_users_between_root_and_kickoff_is_skipped_over(
    spans: Spans,
    agentops_sdk: Any,  # noqa: F811
) -> None:
    tracer = spans.provider.get_tracer("users-own")
    with (
        bridging(spans),
        workflow("stepped", tracer_provider=spans.provider) as root,
        tracer.start_as_current_span("step 1"),
    ):
        research_crew().kickoff(inputs={"topic": "a"})
    spans.provider.force_flush()
    received = {span.name: span for span in received_in(root.get_span_context().trace_id)}
    assert "step 1" not in received and "stepped" not in received  # the user's spans stay the user's
    session = received["stepped.session"]
    assert received["invoke_workflow research"].parent_span_id == session.span_id
    ids = {span.span_id for span in received.values()}
    assert [name for name, span in received.items() if span.parent_span_id not in ids] == ["stepped.session"]
    user = {span.name: span for span in spans.finished()}
    assert user["invoke_workflow research"].parent.span_id == user["step 1"].context.span_id  # unchanged there


def test_each_session_is_reported_delivered_with_its_end_state_and_counted(
    spans: Spans,
    agentops_sdk: Any,  # noqa: F811
) -> None:
    reader = InMemoryMetricReader()
    with sdk_enabled():
        meter_provider = MeterProvider(metric_readers=[reader])
    bridge = AgentOpsSessionProcessor(meter_provider=meter_provider)
    with bridging(spans, bridge):
        with workflow("reported", tracer_provider=spans.provider) as root:
            research_crew().kickoff(inputs={"topic": "a"})
        with pytest.raises(RuntimeError), workflow("reported-failing", tracer_provider=spans.provider):
            research_crew().kickoff(inputs={"topic": "b"})
            raise RuntimeError("judged bad")
        spans.provider.force_flush()
        reports = bridge.session_reports()
    assert [(r.root_name, r.end_state, r.delivered, r.detail) for r in reports] == [
        ("reported", "Success", True, ""),
        ("reported-failing", "Fail", True, ""),
    ]
    assert reports[0].root_span_id == root.get_span_context().span_id
    data = reader.get_metrics_data()
    assert data is not None
    (metric,) = [
        metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "otel_crew.agentops.sessions"
    ]
    counted = {(p.attributes["end_state"], p.attributes["delivered"]): p.value for p in metric.data.data_points}
    assert counted == {("Success", True): 1, ("Fail", True): 1}


def test_a_flow_run_reaches_agentops_with_its_steps_and_crews_in_one_tree(
    spans: Spans,
    agentops_sdk: Any,  # noqa: F811
) -> None:
    with bridging(spans), workflow("flowing", tracer_provider=spans.provider) as root:
        TwoCrews().kickoff()
    received = received_in(root.get_span_context().trace_id)
    by_id = {span.span_id: span for span in received}
    assert [span.name for span in received if span.parent_span_id not in by_id] == ["flowing.session"]
    kinds = Counter(span.attributes.get("agentops.span.kind") for span in received)
    assert kinds["task"] == 2 and kinds["workflow"] == 3  # the two steps; the flow run and its two crews
    for crew in ("research", "writing"):
        (kickoff,) = [span for span in received if span.name == f"invoke_workflow {crew}"]
        assert by_id[kickoff.parent_span_id].attributes.get("agentops.span.kind") == "task"  # under its step
    assert len(received) == len([span for span in spans.finished() if span.name != "flowing"]) + 1
