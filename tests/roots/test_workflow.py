"""workflow(): the user-owned root span, without any CrewAI."""

from __future__ import annotations

import asyncio
import threading

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


def test_one_workflow_object_entered_from_many_threads_at_once_ends_each_own_span(spans: Spans) -> None:
    shared = workflow("shared", tracer_provider=spans.provider)
    tracer = spans.provider.get_tracer("t")
    everyone_inside = threading.Barrier(8)
    mine: dict[int, int] = {}

    def use(number: int) -> None:
        with shared as root:
            everyone_inside.wait(timeout=30)  # all eight uses are open at once
            tracer.start_span(f"step-{number}").end()
            mine[number] = root.get_span_context().span_id

    threads = [threading.Thread(target=use, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    roots = spans.named("shared")
    assert len(roots) == 8 and len({root.context.span_id for root in roots}) == 8
    for number, span_id in mine.items():
        (step,) = spans.named(f"step-{number}")
        assert step.parent is not None and step.parent.span_id == span_id  # ended its own span, not another's


def test_one_workflow_object_in_concurrent_asyncio_tasks_and_nested_in_itself(spans: Spans) -> None:
    shared = workflow("task-shared", tracer_provider=spans.provider)

    async def use(number: int) -> int:
        async with shared as outer:
            await asyncio.sleep(0)
            with shared as inner:  # re-entered inside itself: a child
                assert inner is not outer
            await asyncio.sleep(0)
            assert trace.get_current_span() is outer
            return outer.get_span_context().span_id

    async def main() -> list[int]:
        return await asyncio.gather(*(use(number) for number in range(10)))

    outer_ids = asyncio.run(main())
    spans_by_id = {span.context.span_id: span for span in spans.named("task-shared")}
    assert len(spans_by_id) == 20 and len(set(outer_ids)) == 10
    for span in spans_by_id.values():
        if span.context.span_id not in outer_ids:
            assert span.parent is not None and span.parent.span_id in outer_ids


def test_exiting_a_workflow_in_a_context_that_did_not_enter_it_is_a_clear_error(spans: Spans) -> None:
    shared = workflow("mismatched", tracer_provider=spans.provider)
    with pytest.raises(
        RuntimeError, match=r"workflow\('mismatched'\) exited in a thread or task that did not enter it"
    ):
        shared.__exit__(None, None, None)
