"""The races, driven hard with fixed seeds: 16 threads x 50 roots, the real AgentOps SDK on loopback.

A third of the roots fail; a thread calls ``force_flush()`` at random; the
unclosed-root watcher (on a clock the test drives) flags and force-ends roots
that really are abandoned; ``shutdown()`` comes while roots still run. Every
session ends exactly once with its root's state, no root is flagged twice or
after its end, nothing raises into user code, every span ended before the
shutdown is exported.
"""

from __future__ import annotations

import collections
import random
import threading
import time
from typing import Any

import pytest
from conftest import AGENTOPS, Spans, sdk_enabled
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan

from otel_crew import OtelCrewInstrumentor, workflow
from otel_crew.agentops_sessions.processor import AgentOpsSessionProcessor
from otel_crew.roots.unclosed import UnclosedRoot, UnclosedRootProcessor
from otel_crew.semconv import UNCLOSED_ATTRIBUTE

pytestmark = pytest.mark.crewai

SEED = 20261202
THREADS, ROOTS_PER_THREAD, ABANDONED = 16, 50, 32
IDLE_LIMIT = 1.0
FORCE_END_AFTER = IDLE_LIMIT / 2  # the clock moves this much mid-run: no working root becomes idle
SHUTDOWN_AFTER_ROOTS = THREADS * ROOTS_PER_THREAD // 2


class DrivenClock:
    """Monotonic seconds that move only when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def agentops_sdk() -> Any:
    import agentops

    with sdk_enabled():
        agentops.init(auto_start_session=False, instrument_llm_calls=False)
    return agentops


def kickoff(tracer: trace.Tracer) -> Any:
    return tracer.start_as_current_span(
        "invoke_workflow stress", attributes={"gen_ai.operation.name": "invoke_workflow"}
    )


class Run:
    """What the threads saw, for the checks afterwards."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.errors: list[BaseException] = []
        self.flagged: collections.Counter[str] = collections.Counter()
        self.reasons: collections.Counter[str] = collections.Counter()
        self.idle_flagged: set[str] = set()
        self.ended_before_shutdown: set[str] = set()
        self.roots_done = 0
        self.half_done = threading.Event()
        self.abandoned_flagged = threading.Event()
        self.shutdown_started = threading.Event()
        self.shutdown_done = threading.Event()
        self.flushes = 0

    def flag(self, info: UnclosedRoot) -> None:
        with self.lock:
            self.flagged[info.name] += 1
            self.reasons[info.reason.split("=")[0]] += 1
            if info.reason.startswith("idle"):
                self.idle_flagged.add(info.name)
            if sum(count for name, count in self.flagged.items() if "abandoned" in name) == ABANDONED:
                self.abandoned_flagged.set()


def sessions_named(prefix: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = collections.defaultdict(list)
    for span in AGENTOPS.sessions():
        if span.name.startswith(prefix):
            found[span.name.removesuffix(".session")].append(str(span.attributes.get("agentops.session.end_state")))
    return found


def wait_for_sessions(prefix: str, at_least: int) -> dict[str, list[str]]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = sessions_named(prefix)
        if sum(map(len, found.values())) >= at_least:
            return found
        time.sleep(0.1)
    return sessions_named(prefix)


def test_16_threads_x_50_roots_with_flushes_a_watcher_and_shutdown_racing(spans: Spans, agentops_sdk: Any) -> None:
    run, clock = Run(), DrivenClock()
    watcher = UnclosedRootProcessor(
        idle_timeout=IDLE_LIMIT, max_age=None, force_end_after=FORCE_END_AFTER, on_unclosed=run.flag, clock=clock
    )
    bridge = AgentOpsSessionProcessor(flush_timeout=120)
    instrumentor = OtelCrewInstrumentor()
    instrumentor.instrument(tracer_provider=spans.provider, unclosed_roots=watcher, agentops=bridge)
    tracer = spans.provider.get_tracer("stress")
    try:
        abandoned = []
        for number in range(ABANDONED):  # opened, given a session, and left open
            root = tracer.start_span(f"stress-abandoned-{number}")
            with trace.use_span(root), kickoff(tracer):
                pass
            abandoned.append(root)
        clock.now += 2 * IDLE_LIMIT  # the abandoned roots are idle now; the working ones start after this
        go = threading.Event()

        def work(thread: int) -> None:
            chance = random.Random(SEED + thread)
            go.wait(timeout=60)
            for number in range(ROOTS_PER_THREAD):
                name = f"stress-{thread}-{number}"
                try:
                    with workflow(name, tracer_provider=spans.provider), kickoff(tracer):
                        for _ in range(chance.randrange(1, 4)):
                            tracer.start_span("step").end()
                        if number % 3 == 0:
                            raise ValueError("this pipeline fails")
                except ValueError:
                    pass
                except BaseException as error:  # nothing else may reach user code
                    with run.lock:
                        run.errors.append(error)
                with run.lock:
                    if not run.shutdown_started.is_set():
                        run.ended_before_shutdown.add(name)
                    run.roots_done += 1
                    if run.roots_done == SHUTDOWN_AFTER_ROOTS:
                        run.half_done.set()

        def flush_at_random() -> None:
            chance = random.Random(SEED)
            while not run.shutdown_started.is_set():
                time.sleep(chance.uniform(0, 0.02))  # pacing only; nothing is proven by it
                spans.provider.force_flush(timeout_millis=50)
                run.flushes += 1

        def watch() -> None:  # the watcher's polls, racing everything (its own thread sleeps on real time)
            while not run.shutdown_done.is_set():
                watcher.poll()
                time.sleep(0.001)  # pacing only

        threads = [threading.Thread(target=work, args=(thread,)) for thread in range(THREADS)]
        helpers = [threading.Thread(target=flush_at_random), threading.Thread(target=watch)]
        for thread in [*threads, *helpers]:
            thread.start()
        go.set()
        assert run.half_done.wait(timeout=300) and run.abandoned_flagged.wait(timeout=300)
        clock.now += FORCE_END_AFTER  # the watcher force-ends the flagged ones now, racing the shutdown
        run.shutdown_started.set()
        spans.provider.shutdown()  # while the other half still runs
        run.shutdown_done.set()
        for thread in [*threads, *helpers]:
            thread.join()
    finally:
        instrumentor.uninstrument()

    assert run.errors == []
    assert run.flushes > 0
    exported: dict[str, list[ReadableSpan]] = collections.defaultdict(list)
    for span in spans.finished():
        exported[span.name].append(span)
    roots = {name: found for name, found in exported.items() if name.startswith("stress-")}
    assert all(len(found) == 1 for found in roots.values()), "a root was exported twice"

    # every span ended before the shutdown was exported, every abandoned root force-ended once
    assert run.ended_before_shutdown <= set(roots)
    kickoffs = exported["invoke_workflow stress"]
    assert len(kickoffs) >= len(run.ended_before_shutdown) + ABANDONED
    assert len({span.context.span_id for span in spans.finished()}) == len(spans.finished())  # none twice
    for number in range(ABANDONED):
        (root,) = roots[f"stress-abandoned-{number}"]
        assert root.attributes is not None and root.attributes[UNCLOSED_ATTRIBUTE] is True

    # flagged at most once, only roots really left open (abandoned, or open when the shutdown came)
    assert max(run.flagged.values()) == 1
    assert {f"stress-abandoned-{number}" for number in range(ABANDONED)} <= set(run.flagged)
    assert not set(run.flagged) & run.ended_before_shutdown
    assert run.idle_flagged == {f"stress-abandoned-{number}" for number in range(ABANDONED)}  # only those idle

    # sessions: exactly once each, with the root's state; a root still open
    # when the shutdown reached the bridge ends its session "Indeterminate"
    def expected_states(name: str) -> set[str]:
        (root,) = roots[name]
        if (root.attributes or {}).get(UNCLOSED_ATTRIBUTE) is True:
            return {"Indeterminate"}
        outcome = "Fail" if int(name.rsplit("-", 1)[1]) % 3 == 0 else "Success"
        return {outcome} if name in run.ended_before_shutdown else {outcome, "Indeterminate"}

    must_have = run.ended_before_shutdown | {f"stress-abandoned-{number}" for number in range(ABANDONED)}
    sessions = wait_for_sessions("stress-", len(must_have))
    assert must_have <= set(sessions)
    for name, states in sessions.items():
        assert len(states) == 1 and states[0] in expected_states(name), (name, states)
    assert bridge.open_roots == 0 and bridge.index_size == 0
    assert watcher.open_roots == 0
    print(  # for the record (pytest -s)
        f"stress: {len(roots)} roots exported, {len(sessions)} sessions, {len(run.flagged)} flagged "
        f"{dict(run.reasons)}, {run.flushes} flushes, {len(run.ended_before_shutdown)} roots ended before the shutdown"
    )
