"""UnclosedRootProcessor on a plain SDK provider (no CrewAI needed)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from conftest import Spans, sdk_enabled
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.trace import Status, StatusCode

from otel_crew import workflow
from otel_crew.roots.unclosed import FLAG_EVENT, UnclosedRoot, UnclosedRootProcessor
from otel_crew.semconv import UNCLOSED_ATTRIBUTE


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Watched:
    """A provider whose first processor is an UnclosedRootProcessor on a fake clock."""

    def __init__(self, **options: Any) -> None:
        self.clock = FakeClock()
        self.flagged: list[UnclosedRoot] = []
        self.reader = InMemoryMetricReader()
        with sdk_enabled():
            meters = MeterProvider(metric_readers=[self.reader])
        options.setdefault("clock", self.clock)
        options.setdefault("on_unclosed", self.flagged.append)
        self.processor = UnclosedRootProcessor(meter_provider=meters, **options)
        self.spans = Spans(first_processor=self.processor)
        self.tracer = self.spans.provider.get_tracer("test")
        Watched.made.append(self)

    made: ClassVar[list[Watched]] = []

    def metric(self, name: str) -> int:
        data = self.reader.get_metrics_data()
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        return sum(int(point.value) for point in metric.data.data_points)
        return 0


@pytest.fixture(autouse=True)
def shut_down_watched() -> Iterator[None]:
    """Every provider a test built with ``Watched`` is shut down after it: its watcher thread ends."""
    yield
    while Watched.made:
        Watched.made.pop().spans.provider.shutdown()


@pytest.fixture
def watched() -> Iterator[Watched]:
    setup = Watched(idle_timeout=10, max_age=100, force_end_after=None)
    yield setup
    setup.spans.provider.shutdown()


def test_a_working_root_is_not_idle_and_an_idle_one_is_flagged_once(watched: Watched) -> None:
    busy = watched.tracer.start_span("busy")
    idle = watched.tracer.start_span("idle")
    for _ in range(6):  # 30 s of work in the busy trace
        watched.clock.advance(5)
        with watched.tracer.start_as_current_span("step", context=_inside(busy)):
            pass
        watched.processor.poll()
    assert [info.name for info in watched.flagged] == ["idle"]
    info = watched.flagged[0]
    assert info.age_seconds == pytest.approx(10) and info.idle_seconds == pytest.approx(10)
    assert info.reason == "idle longer than idle_timeout=10s"
    watched.clock.advance(50)
    watched.processor.poll()
    assert [info.name for info in watched.flagged] == ["idle", "busy"]  # busy now idle too, idle not again
    idle.end()
    busy.end()
    assert watched.processor.open_roots == 0 and watched.processor.index_size == 0
    exported = watched.spans.one("idle")
    assert [event.name for event in exported.events] == [FLAG_EVENT]
    assert exported.status.status_code is StatusCode.UNSET  # flagged, not ended by us


def test_the_age_limit_flags_a_root_that_keeps_working(watched: Watched) -> None:
    root = watched.tracer.start_span("long")
    for _ in range(25):
        watched.clock.advance(5)
        watched.tracer.start_span("child", context=_inside(root)).end()
        watched.processor.poll()
    assert len(watched.flagged) == 1
    assert watched.flagged[0].reason == "open longer than max_age=100s"
    root.end()


def test_flagging_logs_once_counts_and_contains_the_callback(caplog: pytest.LogCaptureFixture) -> None:
    def broken_callback(info: UnclosedRoot) -> None:
        raise RuntimeError("callback bug")

    setup = Watched(idle_timeout=1, max_age=None, on_unclosed=broken_callback)
    root = setup.tracer.start_span("forgotten")
    child = setup.tracer.start_span("child", context=_inside(root))
    setup.clock.advance(2)
    with caplog.at_level(logging.WARNING, logger="otel_crew"):
        setup.processor.poll()
        setup.processor.poll()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    trace_id = f"{root.get_span_context().trace_id:032x}"
    assert "'forgotten'" in warnings[0] and trace_id in warnings[0] and "1 open children" in warnings[0]
    assert any("callback raised" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert setup.metric("otel_crew.roots.unclosed") == 1
    assert setup.metric("otel_crew.roots.open") == 1
    child.end()
    root.end()
    assert setup.metric("otel_crew.roots.open") == 0


def test_force_end_exports_the_root_with_error_and_a_late_end_is_harmless() -> None:
    setup = Watched(idle_timeout=5, max_age=None, force_end_after=5)
    root = setup.tracer.start_span("abandoned")
    setup.clock.advance(6)
    setup.processor.poll()
    assert setup.spans.named("abandoned") == []  # flagged only
    setup.clock.advance(6)
    setup.processor.poll()
    exported = setup.spans.one("abandoned")
    assert exported.status.status_code is StatusCode.ERROR
    assert "never closed" in (exported.status.description or "")
    assert exported.attributes is not None and exported.attributes[UNCLOSED_ATTRIBUTE] is True
    assert [event.name for event in exported.events] == [FLAG_EVENT]
    root.set_status(Status(StatusCode.OK))
    root.end()  # the user's late end
    assert len(setup.spans.named("abandoned")) == 1
    assert setup.processor.open_roots == 0


def test_a_workflow_ended_late_by_its_with_block_is_not_exported_twice() -> None:
    setup = Watched(idle_timeout=1, max_age=None, force_end_after=1)
    with workflow("slow", tracer_provider=setup.spans.provider):
        setup.clock.advance(2)
        setup.processor.poll()
        setup.clock.advance(2)
        setup.processor.poll()
    assert len(setup.spans.named("slow")) == 1
    assert setup.spans.one("slow").status.status_code is StatusCode.ERROR


def test_shutdown_with_1000_open_roots_flags_ends_and_exports_them_all() -> None:
    setup = Watched()
    for number in range(1000):
        root = setup.tracer.start_span(f"root-{number}")
        setup.tracer.start_span("child", context=_inside(root)).end()
    setup.spans.provider.shutdown()
    roots = [span for span in setup.spans.finished() if span.name.startswith("root-")]
    assert len(roots) == 1000
    assert all(span.status.status_code is StatusCode.ERROR for span in roots)
    assert all(span.attributes and span.attributes[UNCLOSED_ATTRIBUTE] is True for span in roots)
    assert len(setup.flagged) == 1000
    assert setup.processor.open_roots == 0 and setup.processor.index_size == 0


def test_force_flush_ends_nothing_and_the_users_own_end_counts() -> None:
    setup = Watched()
    with workflow("pipeline", tracer_provider=setup.spans.provider):
        setup.tracer.start_span("done step").end()
        assert setup.spans.provider.force_flush()
        assert setup.spans.names() == ["done step"]  # what ended is exported; the root is not ended
        assert setup.processor.open_roots == 1 and setup.flagged == []
    (root,) = setup.spans.named("pipeline")
    assert root.status.status_code is StatusCode.OK  # the user's end, not ours
    assert root.attributes is not None and UNCLOSED_ATTRIBUTE not in root.attributes
    assert setup.processor.open_roots == 0


def test_cap_flags_and_drops_the_oldest() -> None:
    setup = Watched(max_tracked_roots=10)
    roots = [setup.tracer.start_span(f"r{number}") for number in range(15)]
    assert setup.processor.open_roots == 10
    assert [info.name for info in setup.flagged] == [f"r{number}" for number in range(5)]
    assert all(info.reason == "too many open roots; no longer watched" for info in setup.flagged)
    assert setup.metric("otel_crew.roots.dropped") == 5
    assert setup.metric("otel_crew.roots.open") == 10
    for root in roots:
        root.end()
    assert setup.processor.open_roots == 0 and setup.processor.index_size == 0


def test_work_in_a_nested_workflow_keeps_the_outer_request_root_alive() -> None:
    setup = Watched(idle_timeout=10, max_age=None)
    with setup.tracer.start_as_current_span("GET /report"), workflow("pipeline", tracer_provider=setup.spans.provider):
        for _ in range(5):
            setup.clock.advance(5)
            setup.tracer.start_span("crew step").end()
            setup.processor.poll()
    assert setup.flagged == []


def test_the_outermost_workflow_under_a_local_span_is_a_root_of_its_own() -> None:
    setup = Watched(idle_timeout=10, max_age=None)
    with setup.tracer.start_as_current_span("GET /report"):
        pipeline = workflow("pipeline", tracer_provider=setup.spans.provider)
        with pipeline, workflow("inner step", tracer_provider=setup.spans.provider):
            assert setup.processor.open_roots == 2  # the request and the pipeline; the inner one is a child
        assert setup.processor.open_roots == 1
    assert setup.processor.open_roots == 0


def test_32_threads_flag_exactly_the_leaked_roots() -> None:
    """The clock stands still while the threads work (so no root that ends can
    be idle, however the scheduler treats the threads), then jumps past the
    idle limit: exactly the leaked roots are flagged, once, while the watcher
    thread runs throughout."""
    flagged: list[UnclosedRoot] = []
    lock = threading.Lock()

    def remember(info: UnclosedRoot) -> None:
        with lock:
            flagged.append(info)

    clock = FakeClock()
    processor = UnclosedRootProcessor(idle_timeout=0.2, max_age=None, on_unclosed=remember, clock=clock)
    spans = Spans(first_processor=processor)
    tracer = spans.provider.get_tracer("threads")
    leaked: dict[str, Any] = {}

    def work(number: int) -> None:
        for round_ in range(20):
            with tracer.start_as_current_span(f"root-{number}-{round_}"):
                for _ in range(3):
                    tracer.start_span("child").end()
        leak = tracer.start_span(f"leak-{number}")
        with lock:
            leaked[leak.name] = leak

    threads = [threading.Thread(target=work, args=(number,)) for number in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert flagged == []
    clock.advance(1)
    processor.poll()
    processor.poll()
    assert sorted(info.name for info in flagged) == sorted(leaked)
    for span in leaked.values():
        span.end()
    assert processor.open_roots == 0 and processor.index_size == 0
    spans.provider.shutdown()


def test_one_lazy_worker_thread_stopped_at_shutdown() -> None:
    def workers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "otel-crew-unclosed-roots"]

    before = len(workers())
    processor = UnclosedRootProcessor()
    spans = Spans(first_processor=processor)
    assert len(workers()) == before
    for _ in range(50):
        spans.provider.get_tracer("t").start_span("root").end()
    assert len(workers()) == before + 1
    spans.provider.shutdown()
    assert len(workers()) == before


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_tracks_only_its_own_roots() -> None:
    setup = Watched()
    parent_root = setup.tracer.start_span("parent-root")
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            inherited = setup.processor.open_roots
            setup.tracer.start_span("child-root")
            setup.processor.shutdown()
            names = sorted(span.name for span in setup.spans.finished())
            os.write(writer, f"{inherited}|{','.join(names)}|{len(setup.flagged)}".encode())
        finally:
            os._exit(0)
    os.close(writer)
    os.waitpid(pid, 0)
    inherited, names, flagged = os.read(reader, 1000).decode().split("|")
    assert (inherited, names, flagged) == ("0", "child-root", "1")
    assert setup.processor.open_roots == 1 and setup.flagged == []
    parent_root.end()


def test_roots_open_at_process_exit_are_ended_and_exported() -> None:
    script = textwrap.dedent(
        """
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
        from otel_crew.roots.unclosed import UnclosedRootProcessor

        class Printer(SpanExporter):
            def export(self, spans):
                for span in spans:
                    print("exported", span.name, span.status.status_code.name, flush=True)
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(UnclosedRootProcessor())
        provider.add_span_processor(SimpleSpanProcessor(Printer()))
        provider.get_tracer("t").start_span("forgotten-at-exit")
        """
    )
    env = {key: value for key, value in os.environ.items() if key != "OTEL_SDK_DISABLED"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert "exported forgotten-at-exit ERROR" in result.stdout, result.stderr


@pytest.mark.parametrize(
    ("options", "error", "named"),
    [
        ({"idle_timeout": -1}, ValueError, "idle_timeout"),
        ({"idle_timeout": 0}, ValueError, "idle_timeout"),
        ({"max_age": float("nan")}, ValueError, "max_age"),
        ({"force_end_after": "soon"}, TypeError, "force_end_after"),
        ({"max_age": True}, TypeError, "max_age"),
        ({"on_unclosed": "print"}, TypeError, "on_unclosed"),
        ({"max_tracked_roots": 0}, ValueError, "max_tracked_roots"),
        ({"clock": 3.0}, TypeError, "clock"),
    ],
)
def test_bad_configuration_is_refused_naming_the_option(options: dict[str, Any], error: type, named: str) -> None:
    with pytest.raises(error, match=rf"UnclosedRootProcessor\({named}=\.\.\.\)"):
        UnclosedRootProcessor(**options)


def _inside(span: Any) -> Any:
    from opentelemetry import trace

    return trace.set_span_in_context(span)
