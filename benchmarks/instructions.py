"""Instructions per call, counted by valgrind's callgrind: a measure that no
other process, no scheduler and no frequency change can move.

Each variant runs in ``benchmarks.kickoff_worker`` under
``valgrind --tool=callgrind --instr-atstart=no``; the worker switches the
instrumentation on around the calls it counts (pytest-codspeed ships the
client requests for that), so imports and warm-up cost nothing. The counts
do not depend on load, so the variants run side by side.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from benchmarks import kickoff_worker
from benchmarks.kickoff_worker import CALLGRIND_HOOKS, EXIT_NOT_INSTALLED

_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def available() -> str | None:
    """None when instructions can be counted here, else why not."""
    if shutil.which("valgrind") is None:
        return "valgrind is not installed"
    try:
        importlib.import_module(CALLGRIND_HOOKS)
    except ImportError:
        return "pytest-codspeed (callgrind's client requests) is not installed"
    return None


@dataclass(frozen=True)
class Job:
    """``calls`` calls of ``variant`` (instrumented or not), after ``warmup`` uncounted ones."""

    variant: str
    instrumented: bool
    calls: int
    warmup: int = 2


def _count(job: Job) -> float | None:
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--callgrind-out-file=/dev/null",
        *kickoff_worker.command(
            job.variant,
            "--instructions",
            str(job.calls),
            "--warmup",
            str(job.warmup),
            *(["--instrumented"] if job.instrumented else []),
        ),
    ]
    # One hash seed for all: string hashing decides dict layouts, and so a few instructions.
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    finished = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    if finished.returncode == EXIT_NOT_INSTALLED:
        return None
    found = _COLLECTED.search(finished.stderr)
    if finished.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind run of {job} failed:\n{finished.stderr[-2000:]}")
    return int(found.group(1)) / job.calls


def per_call(jobs: Mapping[str, Job]) -> Mapping[str, float]:
    """Instructions per call for each labelled job; variants not installed are left out."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = dict(zip(jobs, pool.map(_count, jobs.values()), strict=True))
    return {label: count for label, count in counts.items() if count is not None}
