"""SpanScope's status rules: UNSET on success, ERROR with error.type on failure, the outcome on roots."""

from __future__ import annotations

import pytest
from conftest import Spans
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from otel_crew.roots.scope import SpanScope, error_type
from otel_crew.semconv import ROOT_OUTCOME_ATTRIBUTE


class Outer:
    class NestedError(Exception):
        pass


def scope(spans: Spans, name: str, **options: bool) -> SpanScope:
    return SpanScope(spans.provider.get_tracer("test"), name, {}, **options)


def test_success_leaves_the_status_unset_and_a_root_records_that_it_returned(spans: Spans) -> None:
    with scope(spans, "root"), scope(spans, "child"):
        pass
    root, child = spans.one("root"), spans.one("child")
    assert root.status.status_code is StatusCode.UNSET and child.status.status_code is StatusCode.UNSET
    assert root.attributes is not None and root.attributes[ROOT_OUTCOME_ATTRIBUTE] == "returned"
    assert child.attributes is not None and ROOT_OUTCOME_ATTRIBUTE not in child.attributes
    assert "error.type" not in root.attributes


def test_ok_on_success_is_for_workflow_only(spans: Spans) -> None:
    with scope(spans, "asked", ok_on_success=True):
        pass
    assert spans.one("asked").status.status_code is StatusCode.OK


@pytest.mark.parametrize(
    ("error", "expected"),
    [(ValueError("bad"), "ValueError"), (Outer.NestedError("deep"), f"{__name__}.Outer.NestedError")],
)
def test_failure_is_error_with_the_exception_and_its_qualified_type(
    spans: Spans, error: BaseException, expected: str
) -> None:
    with pytest.raises(type(error)) as raised, scope(spans, "root"), scope(spans, "child"):
        raise error
    assert raised.value is error  # passes through untouched
    for name in ("root", "child"):
        span = spans.one(name)
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes is not None and span.attributes["error.type"] == expected
        (event,) = span.events
        assert event.name == "exception" and event.attributes is not None
        assert event.attributes["exception.message"] == str(error)
    assert spans.one("root").attributes[ROOT_OUTCOME_ATTRIBUTE] == "raised"  # type: ignore[index]
    assert error_type(error) == expected


def test_a_status_the_body_set_wins(spans: Spans) -> None:
    with scope(spans, "judged", ok_on_success=True) as span:
        span.set_status(Status(StatusCode.ERROR, "judged bad"))
    assert spans.one("judged").status.description == "judged bad"
    with pytest.raises(KeyError), scope(spans, "kept-ok") as span:
        span.set_status(Status(StatusCode.OK))
        raise KeyError("x")
    kept = spans.one("kept-ok")
    assert kept.status.status_code is StatusCode.OK
    assert kept.attributes is not None and kept.attributes["error.type"] == "KeyError"


def test_a_scope_under_a_non_recording_span_makes_a_child_that_is_not_a_root(spans: Spans) -> None:
    with trace.use_span(spans.provider.get_tracer("t").start_span("outer")) as outer:
        with scope(spans, "inner"):
            pass
        outer.end()
    inner = spans.one("inner")
    assert inner.attributes is not None and ROOT_OUTCOME_ATTRIBUTE not in inner.attributes
