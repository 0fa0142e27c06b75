"""pytest plugin (``-p suite_outcomes``): each test's outcome, as JSON, for run.py to compare.

It owns the record: ``--suite-outcomes PATH`` writes ``{nodeid: [outcome,
detail]}`` at the end of the session, from the process that sees every report
(the xdist controller, or pytest itself without xdist). An outcome is one of
passed, failed, error (setup or teardown), skipped, xfailed, xpassed, or
"collection error" for a file that did not import; the detail is the first
line of the failure or the skip reason, for the listing of differences.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--suite-outcomes", metavar="PATH", help="write each test's outcome to PATH as JSON")


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--suite-outcomes")
    if path and not hasattr(config, "workerinput"):  # xdist workers' reports reach the controller
        config.pluginmanager.register(_Recorder(Path(path)), "suite-outcomes-recorder")


def _detail(report: pytest.TestReport | pytest.CollectReport) -> str:
    if report.passed or report.longrepr is None:
        return ""
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    lines = str(report.longrepr).strip().splitlines()
    errors = [line for line in lines if line.startswith("E ")]
    return (errors or lines[-1:] or [""])[0][:200]


def _outcome(report: pytest.TestReport) -> str | None:
    """The test's outcome as this phase decides it; None when the phase leaves it to the next."""
    xfail = hasattr(report, "wasxfail")
    if report.when == "call":
        if report.skipped:
            return "xfailed" if xfail else "skipped"
        if report.passed:
            return "xpassed" if xfail else "passed"
        return "failed"
    if report.failed:
        return "error"
    if report.when == "setup" and report.skipped:
        return "xfailed" if xfail else "skipped"
    return None


class _Recorder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.outcomes: dict[str, list[str]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        outcome = _outcome(report)
        earlier = self.outcomes.get(report.nodeid)
        if outcome is None or (report.when == "teardown" and earlier is not None and earlier[0] != "passed"):
            return  # a failing teardown turns only a pass into an error
        self.outcomes[report.nodeid] = [outcome, _detail(report)]

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.outcomes[report.nodeid or "(collection)"] = ["collection error", _detail(report)]

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.path.write_text(json.dumps(self.outcomes, indent=1, sort_keys=True))
