"""Crews in other processes under a caller's root: real Celery workers (prefork pool, filesystem broker)
and a process pool, the real AgentOps SDK on its stand-in, the workers' spans over real OTLP.

One trace, one session (the caller's, ended with its outcome), none in a worker; a root whose remote
work outlives its idle limit is not flagged; a killed worker's part is flagged in the caller and
recovered in the worker. Heavy (worker processes import CrewAI): one worker, concurrency 2, for the module.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
from conftest import AGENTOPS, CREWAI, Spans, sdk_enabled
from otlp_receivers import HttpReceiver, ReceivedSpan

from otel_crew import OtelCrewInstrumentor, UnclosedRootProcessor, workflow
from otel_crew.roots.journal import journal_at
from otel_crew.roots.unclosed import FLAG_EVENT, UnclosedRoot
from otel_crew.semconv import RECOVERED_ATTRIBUTE

pytestmark = [
    pytest.mark.skipif(CREWAI is None or CREWAI < (1, 0), reason="the scaling-out tests run on CrewAI 1.x"),
    pytest.mark.scenario,  # worker processes of their own: what crosses a process boundary is the point
]

remote_workers = pytest.importorskip("remote_workers")

IDLE_TIMEOUT = 4.0
LONGER_THAN_IDLE = 1.5 * IDLE_TIMEOUT  # remote work that outlives the caller's idle limit by half of it
BOUND = 180.0  # seconds any one wait may take on a loaded machine before the test fails
ERROR = 2

T = TypeVar("T")


def wait_until(what: str, probe: Callable[[], T | None], timeout: float = BOUND) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found is not None and found is not False:
            return found
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout:g}s: {what}")


class Remote:
    """What the module's workers share with the caller: folders, the OTLP receiver, the worker process."""

    def __init__(self, base: Path, receiver: HttpReceiver) -> None:
        self.folder = base / "celery"
        self.state_dir = base / "state"
        self.receiver = receiver
        self.worker: subprocess.Popen[bytes] | None = None
        self.log = base / "worker.log"

    def log_tail(self, lines: int = 40) -> str:
        """The worker's last log lines, for a failure message."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def spans_of(self, trace_id: int) -> list[ReceivedSpan]:
        return [span for span in self.receiver.snapshot() if span.trace_id == f"{trace_id:032x}"]

    def ran(self, task_id: str) -> None:
        """Wait until the worker has ended the task's run/ span and flushed (remote_workers._after_run)."""
        marker = self.folder / f"postrun-{task_id}"
        wait_until(f"task {task_id} over in the worker", marker.exists)


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    import agentops

    receiver = HttpReceiver().start()
    shared = Remote(tmp_path_factory.mktemp("scaling-out"), receiver)
    remote_workers.configure(str(shared.folder))
    with sdk_enabled():
        agentops.init(auto_start_session=False, instrument_llm_calls=False)
    variables = {
        remote_workers.FOLDER: str(shared.folder),
        remote_workers.OTLP_URL: receiver.url,
        "OTEL_CREW_STATE_DIR": str(shared.state_dir),
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in variables.items():
            patch.setenv(name, value)  # the worker and the pool's processes inherit them
        here = Path(__file__).parent
        patch.setenv("PYTHONPATH", os.pathsep.join([str(here), str(here.parent), os.environ.get("PYTHONPATH", "")]))
        command = [sys.executable, "-m", "celery", "-A", "remote_workers", "worker", "--pool=prefork"]
        command += ["--concurrency=2", "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO"]
        with shared.log.open("wb") as log:
            shared.worker = subprocess.Popen(command, cwd=here, stdout=log, stderr=subprocess.STDOUT)
        try:
            # Both prefork children set up: a task handed to one still starting would wait unseen by the
            # caller's idle limit (as a queued task does; docs/scaling-out.md).
            wait_until("both worker processes set up", lambda: len(list(shared.folder.glob("ready-*"))) >= 2)
            remote_workers.ping.delay().get(timeout=BOUND)
            yield shared
        finally:
            stop(shared.worker)
            receiver.stop()


def stop(worker: subprocess.Popen[bytes]) -> None:
    """A warm shutdown, waited for; SIGKILL only if it hangs."""
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(timeout=10)


class Caller:
    """The calling process: its provider, otel-crew with AgentOps, and what its unclosed-root processor flagged."""

    def __init__(self, spans: Spans) -> None:
        self.spans = spans
        self.flagged: list[UnclosedRoot] = []
        self.flag_seen = threading.Event()

    def on_unclosed(self, root: UnclosedRoot) -> None:
        self.flagged.append(root)
        self.flag_seen.set()


@pytest.fixture
def caller(spans: Spans, remote: Remote) -> Iterator[Caller]:
    me = Caller(spans)
    watcher = UnclosedRootProcessor(
        idle_timeout=IDLE_TIMEOUT, journal=journal_at(str(remote.state_dir)), on_unclosed=me.on_unclosed
    )
    instrumentor = OtelCrewInstrumentor()
    instrumentor.instrument(tracer_provider=spans.provider, unclosed_roots=watcher, agentops="on")
    try:
        yield me
    finally:
        instrumentor.uninstrument()


def sessions_of(trace_id: int, expected: int = 1) -> list[ReceivedSpan]:
    """Sessions AgentOps received for ``trace_id``, once ``expected`` are there, read after a flush."""
    wanted = f"{trace_id:032x}"
    wait_until(f"{expected} session(s)", lambda: sum(s.trace_id == wanted for s in AGENTOPS.sessions()) >= expected)
    return [session for session in AGENTOPS.delivered() if session.trace_id == wanted]


def end_state(session: ReceivedSpan) -> str:
    return str(session.attributes.get("agentops.session.end_state"))


def test_a_fanout_over_celery_is_one_trace_with_one_session_and_its_root_is_not_flagged(
    caller: Caller, remote: Remote
) -> None:
    with workflow("fanout") as root:
        results = [
            remote_workers.crew_task.delay("alpha", LONGER_THAN_IDLE),
            remote_workers.crew_task.delay("beta", 0.0),
        ]
        done = [result.get(timeout=BOUND) for result in results]
    for result in results:
        remote.ran(result.id)
    caller.spans.provider.force_flush()

    trace_id = root.get_span_context().trace_id
    mine = caller.spans.finished()
    assert {span.context.trace_id for span in mine} == {trace_id}
    publishes = {span.context.span_id for span in caller.spans.named("apply_async/remote_workers.crew")}
    assert len(publishes) == 2
    theirs = remote.spans_of(trace_id)
    runs = [span for span in theirs if span.name == "run/remote_workers.crew"]
    assert sorted(int(span.parent_span_id, 16) in publishes for span in runs) == [True, True]
    kickoffs = {span.name: span for span in theirs if span.name.startswith("invoke_workflow ")}
    assert set(kickoffs) == {"invoke_workflow alpha", "invoke_workflow beta"}
    assert {span.resource["process.pid"] for span in theirs} <= {result["pid"] for result in done}
    assert os.getpid() not in {result["pid"] for result in done}

    assert done[0]["elapsed"] > IDLE_TIMEOUT  # the remote work outlived the caller's idle limit ...
    assert caller.flagged == []  # ... and the root, idle here all along, was not flagged
    assert FLAG_EVENT not in [event.name for event in caller.spans.one("fanout").events]

    (session,) = sessions_of(trace_id)  # one, the caller's: no kickoff ran here, no worker opened one
    assert end_state(session) == "Success"
    assert session.parent_span_id == f"{root.get_span_context().span_id:016x}"
    # The workers' crews reach it by the session's own path: forwarded by each worker under its span.
    copies = {span.name: span for span in AGENTOPS.snapshot() if span.trace_id == session.trace_id}
    for crew in ("invoke_workflow alpha", "invoke_workflow beta"):
        assert copies[crew].parent_span_id == session.span_id, crew
        assert copies[crew].span_id == kickoffs[crew].span_id


def test_a_task_that_raises_marks_its_spans_error_and_the_callers_outcome_decides(
    caller: Caller, remote: Remote
) -> None:
    with workflow("fanout-tolerant") as root:
        result = remote_workers.failing_task.delay()
        with pytest.raises(Exception, match="model unavailable"):
            result.get(timeout=BOUND)
    remote.ran(result.id)
    trace_id = root.get_span_context().trace_id
    theirs = {span.name: span for span in remote.spans_of(trace_id)}
    assert theirs["invoke_workflow remote-failing"].status_code == ERROR
    assert theirs["run/remote_workers.failing"].status_code == ERROR
    (session,) = sessions_of(trace_id)
    assert end_state(session) == "Success"  # the caller caught it: its outcome, not the task's


def test_a_killed_worker_is_flagged_in_the_caller_and_recovered_in_the_worker(
    caller: Caller, remote: Remote, tmp_path: Path
) -> None:
    pid_file = tmp_path / "hanging.pid"
    with workflow("fanout-killed") as root:
        trace_id = root.get_span_context().trace_id
        remote_workers.hang_task.delay(str(pid_file), BOUND)
        pid = int(wait_until("the hanging task's pid", lambda: pid_file.exists() and pid_file.read_text()))
        journal = journal_at(str(remote.state_dir))
        wait_until("the worker's part journaled", lambda: journal.remote_activity(trace_id))
        assert not caller.flag_seen.is_set()
        os.kill(pid, signal.SIGKILL)
        assert caller.flag_seen.wait(BOUND), "the root whose remote part died was never flagged"
    (flagged,) = caller.flagged
    assert flagged.name == "fanout-killed" and flagged.reason.startswith("idle longer than")

    def recovered() -> ReceivedSpan | None:
        found = [span for span in remote.spans_of(trace_id) if span.attributes.get(RECOVERED_ATTRIBUTE)]
        return found[0] if found else None

    try:
        part = wait_until("the killed part recovered by the worker's next process", recovered)
    except AssertionError as missing:
        raise AssertionError(f"{missing}; the worker's log ends:\n{remote.log_tail()}") from None
    assert part.name == "run/remote_workers.hang" and part.status_code == ERROR
    (session,) = sessions_of(trace_id)
    assert end_state(session) == "Success"


def test_a_process_pool_with_the_context_injected_by_hand_joins_the_root(caller: Caller, remote: Remote) -> None:
    from opentelemetry import propagate

    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn, initializer=remote_workers.set_up_process) as pool:
        pool.submit(os.getpid).result(timeout=BOUND)  # started and set up before the root: no wait counts as idle
        with workflow("pool-fanout") as root:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            done = pool.submit(remote_workers.pool_part, carrier, "gamma", LONGER_THAN_IDLE).result(timeout=BOUND)
    trace_id = root.get_span_context().trace_id
    theirs = {span.name: span for span in remote.spans_of(trace_id)}
    assert theirs["pool part gamma"].parent_span_id == f"{root.get_span_context().span_id:016x}"
    assert "invoke_workflow gamma" in theirs
    assert done["elapsed"] > IDLE_TIMEOUT and caller.flagged == []
    (session,) = sessions_of(trace_id)
    assert end_state(session) == "Success"
    assert carrier["tracestate"] == f"otelcrew={session.span_id}"  # the marker names the session span: no more
    assert "invoke_workflow gamma" in [span.name for span in AGENTOPS.snapshot() if span.trace_id == session.trace_id]
