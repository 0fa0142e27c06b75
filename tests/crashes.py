"""Processes that open a root and are killed with SIGKILL, and processes that recover it.

The processes run ``roots/crash_scenario.py``; the journal they share is read
here through a connection of the test's own.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from otlp_receivers import HttpReceiver, ReceivedSpan

from otel_crew.roots.journal import FILE_NAME

SCENARIO = os.path.join(os.path.dirname(__file__), "roots", "crash_scenario.py")


def rows(state_dir: Path) -> list[dict[str, Any]]:
    """The journal's entries, read through a connection of the test's own."""
    path = state_dir / FILE_NAME
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM open_roots")]


def set_columns(state_dir: Path, **values: object) -> None:
    with sqlite3.connect(state_dir / FILE_NAME) as db:
        assignments = ", ".join(f"{column} = ?" for column in values)
        db.execute(f"UPDATE open_roots SET {assignments}", tuple(values.values()))


@dataclass(frozen=True)
class Opened:
    process: subprocess.Popen[str]
    trace_id: str
    span_id: str
    row: dict[str, Any]  # its journal entry once activity was written
    state_dir: Path | None = None  # the journal's directory


def scenario(state_dir: Path, *args: str) -> subprocess.Popen[str]:
    stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - read back in failure messages
    process = subprocess.Popen(
        [sys.executable, SCENARIO, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, "OTEL_CREW_STATE_DIR": str(state_dir)},
    )
    process.stderr_file = stderr  # type: ignore[attr-defined]
    return process


def line_of(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=60)
        process.stderr_file.seek(0)  # type: ignore[attr-defined]
        pytest.fail(f"the scenario ended early ({process.returncode}): {process.stderr_file.read()[-3000:]}")  # type: ignore[attr-defined]
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def wait_for_activity(state_dir: Path, span_id: str) -> dict[str, Any]:
    """Until the watcher has written activity after the root's start (it does
    every few seconds); the entry then."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for row in rows(state_dir):
            if row["span_id"] == span_id and row["last_activity_ns"] > json.loads(row["root"])["start_ns"]:
                return row
        time.sleep(0.05)
    pytest.fail(f"no activity was journaled for root {span_id}: {rows(state_dir)}")


def open_roots(state_dir: Path, url: str, count: int = 1, agentops: str = "off") -> list[Opened]:
    """``count`` processes, started together, each with an open root whose crew
    has run and whose children are exported."""
    processes = [scenario(state_dir, "open", url, agentops) for _ in range(count)]
    opened = []
    for process in processes:
        ids = line_of(process)
        row = wait_for_activity(state_dir, ids["span_id"])
        opened.append(Opened(process, ids["trace_id"], ids["span_id"], row, state_dir))
    return opened


def kill(opened: Opened) -> Opened:
    """SIGKILL the process; ``opened`` with its journal entry as the process left it (the watcher may have
    written later activity after the entry ``open_roots`` saw, on a slow or busy machine)."""
    os.kill(opened.process.pid, signal.SIGKILL)
    assert opened.process.wait(timeout=60) == -signal.SIGKILL
    if opened.state_dir is None:
        return opened
    (row,) = [row for row in rows(opened.state_dir) if row["span_id"] == opened.span_id]
    return replace(opened, row=row)


def crash(state_dir: Path, url: str, agentops: str = "off") -> Opened:
    """Open a root in a process and SIGKILL it."""
    (opened,) = open_roots(state_dir, url, agentops=agentops)
    return kill(opened)


def recover_in(state_dir: Path, url: str, count: int = 1, agentops: str = "off") -> list[list[dict[str, Any]]]:
    """``count`` processes that instrument at the same moment; what each recovered."""
    processes = [scenario(state_dir, "recover", url, agentops) for _ in range(count)]
    for process in processes:
        assert line_of(process) == {"ready": True}
    for process in processes:  # all are past their imports: let them go together
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    recovered = [line_of(process)["recovered"] for process in processes]
    for process in processes:
        assert process.wait(timeout=120) == 0
    return recovered


def received(receiver: HttpReceiver, span_id: str) -> list[ReceivedSpan]:
    return [span for span in receiver.snapshot() if span.span_id == span_id]
