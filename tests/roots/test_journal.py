"""Crash-safe roots: the journal of open roots, and their recovery after a real SIGKILL."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CREWAI, Spans
from crashes import crash, kill, open_roots, received, recover_in, rows, set_columns
from opentelemetry import trace
from opentelemetry.trace import StatusCode
from otlp_receivers import HttpReceiver

from otel_crew import config, workflow
from otel_crew.instrumentation.crash_recovery import recover_dead_roots_into
from otel_crew.roots import unclosed
from otel_crew.roots.journal import FILE_NAME, journal_at, journal_from_env
from otel_crew.roots.recovery import RECOVERED_DESCRIPTION, recover_dead_roots
from otel_crew.roots.unclosed import UnclosedRootProcessor
from otel_crew.semconv import RECOVERED_ATTRIBUTE, ROOT_ATTRIBUTE

# The processes instrument CrewAI: without it instrument() installs nothing, and recovers nothing.
needs_crewai = pytest.mark.skipif(CREWAI is None, reason="the crash processes run a crew")


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    server = HttpReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


# -- a process killed with its root open ---------------------------------------------------


@pytest.mark.scenario
@needs_crewai
def test_a_killed_process_root_is_exported_once_even_by_two_processes_starting_at_once(
    state_dir: Path, receiver: HttpReceiver
) -> None:
    crashed, alive = open_roots(state_dir, receiver.url, count=2)
    crashed = kill(crashed)
    assert received(receiver, crashed.span_id) == []  # the root never left the killed process
    orphans = [span for span in receiver.snapshot() if span.parent_span_id == crashed.span_id]
    assert orphans, "the crew's spans were exported under the open root before the kill"

    recovered = recover_in(state_dir, receiver.url, count=2)

    # both processes have exited, their exporters flushed: everything sent has arrived
    (root,) = received(receiver, crashed.span_id)
    assert (root.trace_id, root.name, root.parent_span_id) == (crashed.trace_id, "doomed", "")
    assert root.status_code == 2  # ERROR
    assert root.attributes[RECOVERED_ATTRIBUTE] is True
    assert root.attributes[ROOT_ATTRIBUTE] is True and root.attributes["pipeline.kind"] == "nightly"
    start = json.loads(crashed.row["root"])["start_ns"]
    expected = {"span_id": crashed.span_id, "start": start, "end": crashed.row["last_activity_ns"]}
    assert sorted(recovered, key=len) == [[], [{**expected, "description": RECOVERED_DESCRIPTION}]]

    # the live process's root was not touched, and ends as its code ends it, leaving no entry
    assert received(receiver, alive.span_id) == []
    assert [row["span_id"] for row in rows(state_dir)] == [alive.span_id]
    assert alive.process.stdin is not None
    alive.process.stdin.close()
    assert alive.process.wait(timeout=60) == 0
    (root,) = received(receiver, alive.span_id)
    assert root.status_code == 1 and RECOVERED_ATTRIBUTE not in root.attributes
    assert rows(state_dir) == []


@pytest.mark.scenario
@needs_crewai
def test_otel_crew_recover_ends_a_dead_root(state_dir: Path, receiver: HttpReceiver) -> None:
    crashed = crash(state_dir, receiver.url)
    env = {
        **os.environ,
        "OTEL_CREW_STATE_DIR": str(state_dir),
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
    }
    result = subprocess.run(
        [sys.executable, "-m", "otel_crew.cli", "recover"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ended 1 root(s)" in result.stdout
    (root,) = received(receiver, crashed.span_id)
    assert root.status_code == 2 and root.attributes[RECOVERED_ATTRIBUTE] is True
    assert rows(state_dir) == []


# -- in this process: identity, limits, faults ---------------------------------------------


@pytest.fixture
def journaled(state_dir: Path) -> Iterator[Spans]:
    """A provider whose unclosed-root processor journals into ``state_dir``."""
    recorded = Spans(UnclosedRootProcessor(journal=journal_at(str(state_dir))))
    yield recorded
    recorded.provider.shutdown()


def dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def test_pid_reuse_a_live_pid_with_another_start_time_is_a_dead_process(state_dir: Path, journaled: Spans) -> None:
    tracer = journaled.provider.get_tracer("test")
    reused = tracer.start_span("reused-pid")
    journaled.provider.force_flush()  # the journal is written behind; a flush writes it now
    set_columns(state_dir, process_start="the process that had this pid before")
    ours = tracer.start_span("ours")  # this live process's own root, journaled after the change
    journaled.provider.force_flush()
    into = Spans()

    result = recover_dead_roots(into.provider._active_span_processor, journal=journal_at(str(state_dir)))

    assert (result.roots, into.names()) == (1, ["reused-pid"])
    recovered = into.one("reused-pid")
    assert recovered.context == reused.get_span_context()
    assert recovered.start_time == reused.start_time
    assert recovered.status.status_code is StatusCode.ERROR
    assert recovered.status.description == RECOVERED_DESCRIPTION
    assert [row["span_id"] for row in rows(state_dir)] == [f"{ours.get_span_context().span_id:016x}"]
    ours.end()
    reused.end()
    journaled.provider.force_flush()
    assert rows(state_dir) == []


def test_entries_past_the_age_limit_are_dropped_with_one_log_line(
    state_dir: Path, journaled: Spans, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracer = journaled.provider.get_tracer("test")
    ancient = tracer.start_span("ancient")
    journaled.provider.force_flush()
    eight_days_ago = time.time_ns() - 8 * 86400 * 10**9
    set_columns(state_dir, pid=dead_pid(), last_activity_ns=eight_days_ago)
    into = Spans()
    with caplog.at_level(logging.INFO, logger="otel_crew"):
        result = recover_dead_roots(into.provider._active_span_processor, journal=journal_at(str(state_dir)))
    assert (result.dropped, result.roots, into.finished()) == (1, 0, [])
    assert [record.getMessage() for record in caplog.records if "dropped" in record.getMessage()] == [
        "otel-crew: dropped 1 journal entries of dead processes' roots, too old to recover"
    ]
    assert rows(state_dir) == []
    ancient.end()

    younger = tracer.start_span("eight days is young enough")
    journaled.provider.force_flush()
    set_columns(state_dir, pid=dead_pid(), last_activity_ns=eight_days_ago)
    monkeypatch.setenv("OTEL_CREW_STATE_MAX_AGE_DAYS", "10")
    result = recover_dead_roots(into.provider._active_span_processor, journal=journal_at(str(state_dir)))
    assert (result.dropped, result.roots, into.names()) == (0, 1, ["eight days is young enough"])
    younger.end()


def test_child_spans_never_write_the_journal_only_the_watcher_does(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(unclosed, "JOURNAL_INTERVAL", 3600.0)  # the worker writes nothing during the test
    now = [1000.0]
    processor = UnclosedRootProcessor(journal=journal_at(str(state_dir)), clock=lambda: now[0])
    spans = Spans(processor)
    tracer = spans.provider.get_tracer("test")
    root = tracer.start_span("busy")
    assert processor.write_journal() == 0  # the root's row, with no activity since its start
    with sqlite3.connect(state_dir / FILE_NAME) as observer:
        version = observer.execute("PRAGMA data_version").fetchone()  # changes when another connection commits
        with trace.use_span(root):
            for _ in range(200):
                now[0] += 0.5
                tracer.start_span("child").end()
        assert observer.execute("PRAGMA data_version").fetchone() == version
        assert processor.write_journal() == 1
        assert observer.execute("PRAGMA data_version").fetchone() != version
    (row,) = rows(state_dir)
    assert row["last_activity_ns"] == root.start_time + 100 * 10**9  # 200 children, half a second apart
    assert processor.write_journal() == 0  # nothing new
    spans.provider.shutdown()


def test_a_root_ended_by_shutdown_leaves_no_entry(state_dir: Path, journaled: Spans) -> None:
    journaled.provider.get_tracer("test").start_span("never ended by the user")
    journaled.provider.force_flush()
    assert len(rows(state_dir)) == 1
    journaled.provider.shutdown()
    assert rows(state_dir) == []


def test_a_root_that_ends_before_the_journal_is_written_never_touches_the_disk(
    state_dir: Path, journaled: Spans
) -> None:
    journaled.provider.get_tracer("test").start_span("quick").end()
    journaled.provider.force_flush()
    assert not (state_dir / FILE_NAME).exists()


def test_a_session_opened_before_its_root_is_written_is_written_with_the_root(state_dir: Path) -> None:
    journal = journal_at(str(state_dir))
    tracer = Spans().provider.get_tracer("test")
    root = tracer.start_span("pipeline")
    session = tracer.start_span("session", context=trace.set_span_in_context(root))
    journal.session_opened(root.get_span_context(), session)  # type: ignore[arg-type]  # an SDK span is a ReadableSpan

    assert journal.write_pending([root], []) == 1  # type: ignore[list-item]  # one insert, the session in it
    (row,) = rows(state_dir)
    assert (json.loads(row["root"])["name"], json.loads(row["session"])["name"]) == ("pipeline", "session")

    assert journal.write_pending([], [root.get_span_context()]) == 1  # the delete
    assert rows(state_dir) == []


def test_a_session_noted_before_its_root_is_handed_over_waits_one_write_then_is_dropped(state_dir: Path) -> None:
    """The AgentOps processor can note a session before the unclosed-root processor has seen its root
    (when it is added first, and the root is a bare kickoff): the session waits one write for its row."""
    journal = journal_at(str(state_dir))
    tracer = Spans().provider.get_tracer("test")
    root, unjournaled = tracer.start_span("kickoff"), tracer.start_span("elsewhere")
    for owner in (root, unjournaled):
        session = tracer.start_span("session", context=trace.set_span_in_context(owner))
        journal.session_opened(owner.get_span_context(), session)  # type: ignore[arg-type]
    assert journal.write_pending([], []) == 0  # neither row is there yet
    assert journal.has_pending()  # both wait one more write

    assert journal.write_pending([root], []) == 1  # type: ignore[list-item]  # the root's insert, its session in it
    (row,) = rows(state_dir)
    assert json.loads(row["session"])["name"] == "session"
    assert not journal.has_pending()  # the other session found no row twice: dropped


def journal_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if "journal" in record.getMessage()]


def pipeline_runs_without_the_journal() -> None:
    spans = Spans(UnclosedRootProcessor())  # its journal: the one OTEL_CREW_STATE_DIR names
    recover_dead_roots_into(spans.provider, end_sessions=False)  # what instrument() runs first
    for number in range(2):
        with workflow(f"survives-{number}", tracer_provider=spans.provider):
            spans.provider.get_tracer("test").start_span("step").end()
    assert [spans.one(f"survives-{n}").status.status_code for n in range(2)] == [StatusCode.OK] * 2
    spans.provider.shutdown()


def test_a_corrupt_journal_gives_one_warning_and_the_pipeline_runs(
    state_dir: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    state_dir.mkdir()
    (state_dir / FILE_NAME).write_bytes(b"this is not an SQLite database, it is what a crash left" * 100)
    monkeypatch.setenv("OTEL_CREW_STATE_DIR", str(state_dir))
    with caplog.at_level(logging.WARNING, logger="otel_crew"):
        pipeline_runs_without_the_journal()
    (warning,) = journal_warnings(caplog)
    assert str(state_dir / FILE_NAME) in warning and "DatabaseError" in warning


def test_a_locked_journal_gives_one_warning_and_the_pipeline_runs(
    state_dir: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    state_dir.mkdir()
    monkeypatch.setenv("OTEL_CREW_STATE_DIR", str(state_dir))
    locker = sqlite3.connect(state_dir / FILE_NAME, isolation_level=None)
    locker.execute("PRAGMA journal_mode=WAL")
    locker.execute("BEGIN EXCLUSIVE")  # another process holding the write lock past the busy timeout
    try:
        with caplog.at_level(logging.WARNING, logger="otel_crew"):
            pipeline_runs_without_the_journal()
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    (warning,) = journal_warnings(caplog)
    assert "locked" in warning


@pytest.mark.parametrize("value", ["off", "OFF", ":memory:"])
def test_the_journal_is_switched_off_by_the_variable(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_CREW_STATE_DIR", value)
    assert config.state_dir() is None
    assert journal_from_env() is None  # what UnclosedRootProcessor() and recovery use


def test_the_default_state_directory_is_the_users_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_CREW_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.setattr(sys, "platform", "linux")
    assert config.state_dir() == str(tmp_path / "otel-crew")
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "Local"))
    assert config.state_dir() == str(tmp_path / "Local" / "otel-crew")


def test_a_bad_journal_option_is_refused_naming_it() -> None:
    with pytest.raises(TypeError, match=r"UnclosedRootProcessor\(journal=...\)"):
        UnclosedRootProcessor(journal="~/state")  # type: ignore[arg-type]
