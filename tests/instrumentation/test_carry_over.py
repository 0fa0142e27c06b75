"""The kickoff hand-off: keyed by the object itself, never crossed by id reuse, never full."""

from __future__ import annotations

import gc
import threading

from conftest import Spans
from opentelemetry import context as otel_context
from opentelemetry import trace

from otel_crew.instrumentation.carry_over import ContextHandoff


class Kickoff:
    """Stands for a Crew or a Task: an object that takes weak references."""


def test_10000_concurrent_hand_offs_each_find_their_own_context(spans: Spans) -> None:
    handoff = ContextHandoff()
    tracer = spans.provider.get_tracer("t")
    kickoffs = [Kickoff() for _ in range(10_000)]
    left: dict[int, int] = {}
    for number, kickoff in enumerate(kickoffs):
        span = tracer.start_span(f"caller-{number}")
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            handoff.leave("argument", kickoff)
        finally:
            otel_context.detach(token)
        left[number] = span.get_span_context().span_id
    assert len(handoff) == 10_000  # nothing dropped
    taken: dict[int, int] = {}

    def take(numbers: range) -> None:
        for number in numbers:
            context = handoff.take("argument", kickoffs[number])
            assert context is not None
            taken[number] = trace.get_current_span(context).get_span_context().span_id

    threads = [threading.Thread(target=take, args=(range(start, 10_000, 8),)) for start in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert taken == left
    assert len(handoff) == 0


def test_a_reused_id_never_finds_an_earlier_objects_context() -> None:
    handoff = ContextHandoff()
    first = Kickoff()
    first_id = id(first)
    handoff.leave("argument", first)
    del first
    gc.collect()
    assert len(handoff) == 0  # the entry went with its object
    later = [Kickoff() for _ in range(1000)]  # CPython reuses freed memory: likely one has first's id
    reused = [kickoff for kickoff in later if id(kickoff) == first_id]
    for kickoff in reused or later[:1]:
        assert handoff.take("argument", kickoff) is None


def test_objects_without_weak_references_are_held_until_taken() -> None:
    handoff = ContextHandoff()
    plain = object()  # takes no weak reference
    handoff.leave("instance", plain)
    assert handoff.take("instance", object()) is None  # another object is not it
    assert handoff.take("instance", plain) is not None
    assert len(handoff) == 0
