"""workflow(): the user-owned root span, without any CrewAI."""

from __future__ import annotations

import asyncio

import pytest
from conftest import Spans
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags

from otel_crew import workflow
from otel_crew.semconv import ROOT_ATTRIBUTE


def test_outermost_workflow_is_a_new_trace_and_the_root(spans: Spans) -> None:
    with workflow("nightly", attributes={"team": "data"}, tracer_provider=spans.provider) as root:
        assert trace.get_current_span() is root
        with workflow("inner", tracer_provider=spans.provider):
            pass
    outer, inner = spans.one("nightly"), spans.one("inner")
    assert outer.parent is None
    assert outer.attributes is not None and outer.attributes[ROOT_ATTRIBUTE] is True
    assert outer.attributes["team"] == "data"
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    assert inner.attributes is not None and ROOT_ATTRIBUTE not in inner.attributes
    assert outer.status.status_code is StatusCode.OK
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_workflow_nests_under_a_remote_request_span(spans: Spans) -> None:
    remote = SpanContext(trace_id=0xABC, span_id=0xDEF, is_remote=True, trace_flags=TraceFlags(1))
    with (
        trace.use_span(NonRecordingSpan(remote)),
        workflow("request-pipeline", tracer_provider=spans.provider),
    ):
        pass
    root = spans.one("request-pipeline")
    assert root.context.trace_id == 0xABC
    assert root.parent is not None and root.parent.span_id == 0xDEF and root.parent.is_remote
    assert root.attributes is not None and root.attributes[ROOT_ATTRIBUTE] is True


def test_workflow_under_a_local_span_is_still_the_root_of_its_body(spans: Spans) -> None:
    tracer = spans.provider.get_tracer("test")
    with tracer.start_as_current_span("GET /report"), workflow("pipeline", tracer_provider=spans.provider):
        pass
    request, root = spans.one("GET /report"), spans.one("pipeline")
    assert root.parent is not None and root.parent.span_id == request.context.span_id
    assert root.attributes is not None and root.attributes[ROOT_ATTRIBUTE] is True


def test_exception_propagates_unchanged_and_marks_error(spans: Spans) -> None:
    error = KeyError("missing")
    with pytest.raises(KeyError) as raised, workflow("p", tracer_provider=spans.provider):
        raise error
    assert raised.value is error
    root = spans.one("p")
    assert root.status.status_code is StatusCode.ERROR
    assert root.status.description is not None and "KeyError" in root.status.description
    assert [event.name for event in root.events] == ["exception"]


def test_a_status_set_by_the_user_wins(spans: Spans) -> None:
    with workflow("p", tracer_provider=spans.provider) as root:
        root.set_status(Status(StatusCode.ERROR, "judged bad"))
    assert spans.one("p").status.description == "judged bad"
    with pytest.raises(ValueError), workflow("q", tracer_provider=spans.provider) as root:
        root.set_status(Status(StatusCode.OK))
        raise ValueError("still ok by the user's word")
    assert spans.one("q").status.status_code is StatusCode.OK


def test_decorator_on_sync_and_async_functions(spans: Spans) -> None:
    @workflow("sync-job", tracer_provider=spans.provider)
    def job(x: int) -> int:
        return x * 2

    @workflow("async-job", tracer_provider=spans.provider)
    async def ajob(x: int) -> int:
        await asyncio.sleep(0)
        return x * 3

    assert job(2) == 4
    assert job(3) == 6
    assert asyncio.run(ajob(2)) == 6
    assert len(spans.named("sync-job")) == 2
    assert spans.one("async-job").status.status_code is StatusCode.OK


def test_async_with_keeps_concurrent_tasks_apart(spans: Spans) -> None:
    async def pipeline(name: str) -> int:
        async with workflow(name, tracer_provider=spans.provider):
            await asyncio.sleep(0.01)
            with spans.provider.get_tracer("t").start_as_current_span(f"{name}-step"):
                await asyncio.sleep(0.01)
        return 1

    async def main() -> None:
        await asyncio.gather(*(pipeline(f"p{i}") for i in range(5)))

    asyncio.run(main())
    for i in range(5):
        root, step = spans.one(f"p{i}"), spans.one(f"p{i}-step")
        assert root.parent is None
        assert step.parent is not None and step.parent.span_id == root.context.span_id


@pytest.mark.parametrize(
    ("name", "attributes", "error", "message"),
    [
        ("", None, ValueError, "must not be empty"),
        ("   ", None, ValueError, "must not be empty"),
        (None, None, TypeError, "expected a non-empty str, got NoneType"),
        ("p", ["not", "a", "mapping"], TypeError, "expected a mapping"),
        ("p", {1: "x"}, TypeError, "keys must be non-empty str"),
    ],
)
def test_bad_input_is_refused_at_the_call(name: object, attributes: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        workflow(name, attributes)  # type: ignore[arg-type]


def test_decorating_a_non_function_is_refused() -> None:
    with pytest.raises(TypeError, match="decorates a function"):
        workflow("p")(42)  # type: ignore[arg-type]
