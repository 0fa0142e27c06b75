"""CrewAI's own test suite, run plain and instrumented by otel-crew: any test whose outcome differs fails.

It owns the procedure of ``nox -s crewai_suite``: ``tests/`` extracted from
CrewAI's sdist beside suite_conftest.py (as the root conftest), once per mode,
one run without otel-crew and one with ``-p suite_instrumented``, at the same
time, each test's outcome recorded by ``-p suite_outcomes``, the files holding
differing tests run once more in both modes (a test that differs only once was
a flake), and a summary. Tests that fail in both modes are fine: only
differences count.

The two runs go side by side because the suite mostly waits (its own sleeps,
retries and subprocesses): one run, about 10 minutes on 2 cores, uses about
300 CPU-seconds. Each run has its own copy of ``tests/`` as its
working directory, so files a test writes there are its run's alone.

    python crewai_suite/run.py --sdist crewai-X.tar.gz [--jobs 2] [--timeout 120] [pytest args]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent
MODES = ("plain", "instrumented")

_PYTEST_INI = """\
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
python_files = test_*.py
markers =
    telemetry: a telemetry test (CrewAI's marker)
"""

Outcomes = dict[str, list[str]]
_ABSENT = ["absent", ""]  # a test one run has and the other lacks


def extract_tests(sdist: Path, into: Path) -> Path:
    """``tests/`` of the sdist under ``into``, with our conftest and pytest.ini at its root."""
    with tarfile.open(sdist) as archive:
        top = archive.getnames()[0].split("/")[0]
        members = [m for m in archive.getmembers() if m.name.startswith(f"{top}/tests/")]
        archive.extractall(into, members=members, filter="data")
    root = into / top
    shutil.copyfile(HERE / "suite_conftest.py", root / "conftest.py")
    (root / "pytest.ini").write_text(_PYTEST_INI)
    return root


@dataclass
class _Run:
    mode: str
    out: Path
    log: IO[bytes]
    process: subprocess.Popen[bytes]
    started: float


def start_mode(mode: str, root: Path, targets: Sequence[str], args: argparse.Namespace, extra: Sequence[str]) -> _Run:
    out = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=root.parent.parent))
    command = [
        sys.executable, "-m", "pytest", *targets,
        "-p", "suite_outcomes", "--suite-outcomes", str(out / "outcomes.json"),
        "-p", "no:cacheprovider", "-q", "--no-header", "-rN", "--tb=no", "--durations=15",
        "--continue-on-collection-errors", "--block-network", f"--timeout={args.timeout}",
        *(["-n", str(args.jobs), "--dist=loadfile", "--max-worker-restart=4"] if args.jobs > 1 else []),
        *(["-p", "suite_instrumented"] if mode == "instrumented" else []),
        *extra,
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "OTEL_CREW_STATE_DIR": str(out / "state"),  # otel-crew's open-roots journal, not in $HOME
        "OTEL_CREW_SUITE_SPANS": str(out / "spans"),
    }
    what = " ".join(targets) if len(targets) < 4 else f"{len(targets)} files"
    print(f"crewai suite: {mode} run of {what} (its output: {out / 'pytest.log'})", flush=True)
    log = (out / "pytest.log").open("wb")
    process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    return _Run(mode, out, log, process, time.monotonic())


def _summary_of(log: Path) -> str:
    """pytest's closing part of a run's output: the slowest tests and the counts."""
    lines = log.read_text(errors="replace").splitlines()
    start = next((n for n, line in enumerate(lines) if "slowest" in line and line.startswith("=")), len(lines) - 20)
    return "\n".join(lines[max(start, 0) :])


def finish_mode(run: _Run, must_record: bool) -> Outcomes:
    """The run's outcomes, once it ends. ``must_record``: an instrumented run that recorded no span fails (the
    whole suite runs crews; a rerun of a few files may run none)."""
    returncode = run.process.wait()
    run.log.close()
    print(f"crewai suite: {run.mode} run took {time.monotonic() - run.started:.0f} s", flush=True)
    print(_summary_of(run.out / "pytest.log"), flush=True)
    if returncode not in (0, 1) or not (run.out / "outcomes.json").exists():
        raise SystemExit(f"crewai suite: the {run.mode} run did not complete (pytest exit {returncode})")
    if run.mode == "instrumented":
        spans = int((run.out / "spans").read_text()) if (run.out / "spans").exists() else 0
        print(f"  otel-crew recorded {spans} spans", flush=True)
        if spans == 0 and must_record:
            raise SystemExit("crewai suite: the instrumented run recorded no spans; otel-crew was not instrumenting")
    outcomes: Outcomes = json.loads((run.out / "outcomes.json").read_text())
    return outcomes


def run_modes(
    roots: dict[str, Path], targets: Sequence[str], args: argparse.Namespace, extra: Sequence[str], first: bool
) -> dict[str, Outcomes]:
    """Both modes at once, each in its own copy of the tests; each mode's outcomes. ``first``: the run asked
    for, not a rerun of the files whose tests differed."""
    runs = [start_mode(mode, roots[mode], targets, args, extra) for mode in MODES]
    return {run.mode: finish_mode(run, must_record=first) for run in runs}


def differing(plain: Outcomes, instrumented: Outcomes) -> list[str]:
    return sorted(
        nodeid
        for nodeid in plain.keys() | instrumented.keys()
        if plain.get(nodeid, _ABSENT)[0] != instrumented.get(nodeid, _ABSENT)[0]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", type=Path, required=True, help="CrewAI's sdist (.tar.gz)")
    parser.add_argument("--jobs", type=int, default=2, help="pytest-xdist workers per run (default 2)")
    parser.add_argument("--timeout", type=int, default=120, help="seconds per test before it fails (default 120)")
    args, extra = parser.parse_known_args(argv)
    started = time.monotonic()
    work = args.sdist.resolve().parent / "crewai-suite"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    roots = {mode: extract_tests(args.sdist, work / mode) for mode in MODES}
    targets = [arg for arg in extra if arg.startswith("tests")] or ["tests"]
    options = [arg for arg in extra if not arg.startswith("tests")]

    first = run_modes(roots, targets, args, options, first=True)
    suspects = differing(first["plain"], first["instrumented"])
    still, final = suspects, first
    if suspects:
        files = sorted({nodeid.split("::")[0] for nodeid in suspects})
        print(f"crewai suite: {len(suspects)} test(s) differ; running their {len(files)} file(s) once more")
        final = run_modes(roots, files, args, options, first=False)
        still = [nodeid for nodeid in differing(final["plain"], final["instrumented"]) if nodeid in suspects]
        for nodeid in sorted(set(suspects) - set(still)):
            print(f"  flaky, same on the second run: {nodeid}")

    total = len(first["plain"].keys() | first["instrumented"].keys())
    minutes = (time.monotonic() - started) / 60
    print(f"crewai suite: {total} tests, {total - len(still)} same, {len(still)} differ ({minutes:.1f} min)")
    for nodeid in still:
        plain, instrumented = final["plain"].get(nodeid, _ABSENT), final["instrumented"].get(nodeid, _ABSENT)
        print(f"  DIFFERS {nodeid}")
        print(f"    plain: {plain[0]} {plain[1]}\n    instrumented: {instrumented[0]} {instrumented[1]}")
    return 1 if still else 0


if __name__ == "__main__":
    raise SystemExit(main())
