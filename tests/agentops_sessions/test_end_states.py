"""End states follow the root's outcome, not a status otel-crew set."""

from __future__ import annotations

import pytest
from conftest import Spans
from opentelemetry.trace import Status, StatusCode

from otel_crew.agentops_sessions.end_states import end_state, validated_end_states
from otel_crew.roots.scope import SpanScope
from otel_crew.semconv import UNCLOSED_ATTRIBUTE


def test_a_root_that_returned_succeeded_though_its_status_is_unset(spans: Spans) -> None:
    with SpanScope(spans.provider.get_tracer("t"), "bare kickoff", {}):
        pass
    root = spans.one("bare kickoff")
    assert root.status.status_code is StatusCode.UNSET
    assert end_state(root) == "Success"
    assert end_state(root, validated_end_states({StatusCode.OK: "Completed"})) == "Completed"


def test_a_root_that_raised_failed(spans: Spans) -> None:
    with pytest.raises(ValueError), SpanScope(spans.provider.get_tracer("t"), "raised", {}):
        raise ValueError("x")
    assert end_state(spans.one("raised")) == "Fail"
    assert end_state(spans.one("raised"), validated_end_states({StatusCode.ERROR: "Error"})) == "Error"


def test_a_plain_root_ended_unset_is_indeterminate_and_statuses_it_set_count(spans: Spans) -> None:
    tracer = spans.provider.get_tracer("t")
    tracer.start_span("plain").end()
    judged = tracer.start_span("judged bad")
    judged.set_status(Status(StatusCode.ERROR))
    judged.end()
    assert end_state(spans.one("plain")) == "Indeterminate"
    assert end_state(spans.one("judged bad")) == "Fail"


def test_a_root_otel_crew_ended_is_indeterminate_whatever_its_status(spans: Spans) -> None:
    with SpanScope(spans.provider.get_tracer("t"), "forced", {}) as span:
        span.set_attribute(UNCLOSED_ATTRIBUTE, True)
    assert end_state(spans.one("forced"), validated_end_states({StatusCode.UNSET: "Abandoned"})) == "Indeterminate"
