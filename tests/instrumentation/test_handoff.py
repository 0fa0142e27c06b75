"""What crosses the wire when a root hands work off (the tracestate marker, nothing else), and Celery's
instrumentor wired onto otel-crew's provider. In one process; the workers are in test_scaling_out.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from conftest import Spans, instrumenting, sdk_enabled
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from otel_crew import OtelCrewInstrumentor, workflow
from otel_crew.instrumentation.celery_wiring import SPLIT_WARNING
from otel_crew.roots.definition import is_remote_part
from otel_crew.roots.remote import remote_anchor

celery_instrumentation = pytest.importorskip("opentelemetry.instrumentation.celery")


def sent() -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@pytest.fixture
def instrumented(spans: Spans) -> Iterator[Spans]:
    """Without sessions: the marker's value is 1 (with one, it names the session span: test_scaling_out)."""
    with instrumenting(spans, agentops="off") as instrumented_spans:
        yield instrumented_spans


def test_a_handoff_sends_the_marker_and_nothing_else_does(instrumented: Spans) -> None:
    tracer = instrumented.provider.get_tracer("test")
    token = otel_context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        with workflow("fanout") as root:
            from_root = sent()
            with tracer.start_as_current_span("apply_async/task", kind=SpanKind.PRODUCER):
                from_producer = sent()
            with tracer.start_as_current_span("GET /service", kind=SpanKind.CLIENT):
                from_client = sent()
            with tracer.start_as_current_span("step"):
                from_inner_span = sent()
    finally:
        otel_context.detach(token)
    assert from_root["tracestate"] == from_producer["tracestate"] == "otelcrew=1"
    assert "tracestate" not in from_client and "tracestate" not in from_inner_span
    assert {from_root["baggage"], from_client["baggage"]} == {"tenant=acme"}  # baggage as before
    assert f"{root.get_span_context().trace_id:032x}" in from_root["traceparent"]
    assert all(len(span.context.trace_state) == 0 for span in instrumented.finished())  # our spans unchanged


def test_without_otel_crew_no_marker_is_sent(spans: Spans) -> None:
    with spans.provider.get_tracer("test").start_as_current_span("root"):
        assert "tracestate" not in sent()


def test_only_a_marked_remote_parent_makes_a_local_part() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    marked = trace.get_current_span(propagate.extract({"traceparent": parent, "tracestate": "otelcrew=1"}))
    plain = trace.get_current_span(propagate.extract({"traceparent": parent, "tracestate": "vendor=x"}))
    assert is_remote_part(marked.get_span_context())
    assert not is_remote_part(plain.get_span_context())
    assert not is_remote_part(None)
    assert remote_anchor(plain.get_span_context()) is None
    assert remote_anchor(marked.get_span_context()) is None  # 1: no session span named
    anchored = propagate.extract({"traceparent": parent, "tracestate": "otelcrew=00f067aa0ba902b7"})
    anchor = remote_anchor(trace.get_current_span(anchored).get_span_context())
    assert anchor is not None and (anchor.trace_id, anchor.span_id) == (
        0x0AF7651916CD43DD8448EB211C80319C,
        0xF067AA0BA902B7,
    )


@pytest.fixture
def celery_instrumentor() -> Iterator[object]:
    instrumentor = celery_instrumentation.CeleryInstrumentor()
    yield instrumentor
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


def test_instrument_wires_celery_onto_its_provider_and_takes_it_off(spans: Spans, celery_instrumentor: object) -> None:
    with instrumenting(spans):
        assert celery_instrumentor.is_instrumented_by_opentelemetry  # type: ignore[attr-defined]
        processors = spans.provider._active_span_processor
        assert celery_instrumentor._tracer.span_processor is processors  # type: ignore[attr-defined]
    assert not celery_instrumentor.is_instrumented_by_opentelemetry  # type: ignore[attr-defined]
    with instrumenting(spans, celery="off"):
        assert not celery_instrumentor.is_instrumented_by_opentelemetry  # type: ignore[attr-defined]


def test_celery_on_another_provider_is_said_in_one_line(
    spans: Spans, celery_instrumentor: object, caplog: pytest.LogCaptureFixture
) -> None:
    with sdk_enabled():
        elsewhere = TracerProvider()
    celery_instrumentor.instrument(tracer_provider=elsewhere)  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING), instrumenting(spans):
        pass
    assert caplog.text.count(SPLIT_WARNING) == 1
    assert celery_instrumentor.is_instrumented_by_opentelemetry  # type: ignore[attr-defined]  # left as it was


def test_an_unknown_celery_mode_is_refused() -> None:
    with pytest.raises(ValueError, match=r"instrument\(celery=\.\.\.\)"):
        OtelCrewInstrumentor().instrument(celery="on")
