"""Where an instrumentor's added time goes inside a kickoff: the profile behind the kickoff targets.

``Clocks.install()`` puts a clock around the SDK's span start and end, around
otel-crew's two processors, and around otel-crew's wrappers (their own time:
the CrewAI method each one wraps is subtracted). A worker installs them
before instrumenting and then runs instrumented kickoffs. Each clock costs two
reads of ``perf_counter_ns`` and a call, included in what it measures, so
the parts are upper bounds.

``cold_span`` times one SDK span right after the caches were evicted, next to
the same span in a tight loop: what a span costs when it runs, as inside a
kickoff, after milliseconds of other work.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import Span, Tracer

from otel_crew import AgentOpsSessionProcessor, UnclosedRootProcessor
from otel_crew.instrumentation.crew import CrewWrappers

SDK = "sdk"
PROCESSORS = "processors"
WRAPPERS = "wrappers"
_WRAPPER_METHODS = ("kickoff", "execute_task", "run_tool")
_EVICTION_BYTES = 64 * 2**20  # well beyond the last-level cache of the machines this runs on
_CACHE_LINE = 64


class Clocks:
    """Nanoseconds spent in each part since the last ``reset()``."""

    def __init__(self) -> None:
        self.totals = dict.fromkeys((SDK, PROCESSORS, WRAPPERS), 0)

    @classmethod
    def install(cls) -> Clocks:
        clocks = cls()
        clocks._clock(Tracer, "start_span", SDK)
        clocks._clock(Span, "end", SDK)
        for processor in (AgentOpsSessionProcessor, UnclosedRootProcessor):
            clocks._clock(processor, "on_start", PROCESSORS)
            clocks._clock(processor, "on_end", PROCESSORS)
        for method in _WRAPPER_METHODS:
            clocks._clock_wrapper(method)
        return clocks

    def reset(self) -> None:
        for part in self.totals:
            self.totals[part] = 0

    def _clock(self, owner: type, name: str, part: str) -> None:
        original = vars(owner)[name]
        totals = self.totals

        def clocked(*args: Any, **kwargs: Any) -> Any:
            start = perf_counter_ns()
            try:
                return original(*args, **kwargs)
            finally:
                totals[part] += perf_counter_ns() - start

        setattr(owner, name, clocked)

    def _clock_wrapper(self, name: str) -> None:
        """Clock a wrapper's own time: all of it, less the CrewAI method it runs."""
        original = vars(CrewWrappers)[name]
        totals = self.totals

        def clocked(wrappers: CrewWrappers, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
            inside = [0]

            def clocked_wrapped(*inner_args: Any, **inner_kwargs: Any) -> Any:
                start = perf_counter_ns()
                try:
                    return wrapped(*inner_args, **inner_kwargs)
                finally:
                    inside[0] += perf_counter_ns() - start

            start = perf_counter_ns()
            try:
                return original(wrappers, clocked_wrapped, instance, args, kwargs)
            finally:
                totals[WRAPPERS] += perf_counter_ns() - start - inside[0]

        setattr(CrewWrappers, name, clocked)


def cold_span(tracer: trace.Tracer, calls: int) -> tuple[float, float]:
    """Median seconds of one span in a tight loop, and right after the caches were evicted."""
    eviction = bytearray(_EVICTION_BYTES)
    line_marks = b"\x01" * (_EVICTION_BYTES // _CACHE_LINE)
    hot, cold = [], []
    for _ in range(calls):
        start = perf_counter_ns()
        tracer.start_span("floor").end()
        hot.append(perf_counter_ns() - start)
        eviction[::_CACHE_LINE] = line_marks  # one write per cache line
        start = perf_counter_ns()
        tracer.start_span("floor").end()
        cold.append(perf_counter_ns() - start)
    return statistics.median(hot) / 1e9, statistics.median(cold) / 1e9
