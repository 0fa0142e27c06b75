"""The crewai_suite runner's verdict: a test whose outcome differs between the plain and the instrumented run
(or that only one run has) is a difference; a test that fails in both is not."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

# The runner is a script beside its plugins, not a package: loaded from its file.
_SPEC = importlib.util.spec_from_file_location("crewai_suite_run", Path(__file__).parent.parent / "crewai_suite/run.py")
assert _SPEC is not None and _SPEC.loader is not None
runner = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = runner  # as importlib's recipe does: its dataclasses look their module up there
_SPEC.loader.exec_module(runner)


# The runner's verdict is a function of two outcome maps; its session runs on the latest release only.
@pytest.mark.one_line
def test_only_outcomes_that_differ_between_the_runs_count() -> None:
    plain = {
        "t.py::same_pass": ["passed", ""],
        "t.py::fails_in_both": ["failed", "ImportError"],
        "t.py::broken_by_us": ["passed", ""],
        "t.py::only_plain": ["passed", ""],
    }
    instrumented = {
        "t.py::same_pass": ["passed", ""],
        "t.py::fails_in_both": ["failed", "ImportError: another message"],
        "t.py::broken_by_us": ["failed", "AssertionError"],
        "t.py::only_instrumented": ["skipped", ""],
    }
    expected = ["t.py::broken_by_us", "t.py::only_instrumented", "t.py::only_plain"]
    assert runner.differing(plain, instrumented) == expected
    assert runner.differing(plain, plain) == []


def _finished_instrumented_run(out: Path) -> object:
    """An instrumented run that ended and recorded no span (its process: a real one that exits 0)."""
    (out / "outcomes.json").write_text(json.dumps({"tests/t.py::quiet": ["passed", ""]}))
    (out / "pytest.log").write_text("1 passed in 0.01s\n")
    process = subprocess.Popen([sys.executable, "-c", ""])
    return runner._Run("instrumented", out, (out / "pytest.log").open("ab"), process, time.monotonic())


# The harness, not CrewAI: the same on every line.
@pytest.mark.one_line
def test_no_span_fails_the_whole_run_but_not_a_rerun_of_a_few_files(tmp_path: Path) -> None:
    rerun = runner.finish_mode(_finished_instrumented_run(tmp_path), must_record=False)
    assert rerun == {"tests/t.py::quiet": ["passed", ""]}  # a file of CI's rerun may run no crew at all
    with pytest.raises(SystemExit, match="recorded no spans; otel-crew was not instrumenting"):
        runner.finish_mode(_finished_instrumented_run(tmp_path), must_record=True)
