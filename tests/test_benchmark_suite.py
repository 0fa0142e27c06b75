"""What the README promises of the benchmark suite beyond its running (which
``nox -s bench_smoke`` proves): without valgrind, it says why nothing was counted."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import instructions


def test_without_valgrind_the_instruction_counts_say_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no valgrind on it
    assert instructions.available() == "valgrind is not installed"
