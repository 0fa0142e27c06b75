"""Test sessions: lint and types, then the suite on each supported CrewAI line.

Each CrewAI line gets its own environment, built from pyproject.toml.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["lint", "docs", "tests"]  # no peer installs by default; `nox -s bench` writes BENCHMARKS.md
# Not in the default list either (about 10 minutes on 2 cores): `nox -s crewai_suite`, run by .ci/run.

LATEST = "latest"
CREWAI_LINES = {
    # The a2a extra: CrewAI's A2A agents, which read their own methods' __wrapped__ (tests/instrumentation).
    # The anthropic extra: CrewAI's native Anthropic provider, tested against a loopback Messages API.
    # The litellm extra: CrewAI's LiteLLM-backed LLM (is_litellm=True), tested against the loopback server.
    "latest": ["crewai[a2a,anthropic,litellm]>=1.15,<2"],
    "0.130": ["crewai==0.130.0"],
    # An older OpenTelemetry, as such projects have: AgentOps' own exporter
    # works there, and the tests show otel-crew's export repair stays out.
    "0.102": ["crewai==0.102.0", "opentelemetry-sdk<1.45", "opentelemetry-exporter-otlp<1.45"],
    # No CrewAI at all: the package, workflow roots and processors still work,
    # and instrument() says in one line that there is nothing to instrument.
    "none": [],
}


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format) and mypy."""
    session.install("-e", ".[lint,crewai,agentops]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


# Both cores: most of the suite's time is fresh interpreters importing CrewAI (scenarios that need a
# process of their own), which run side by side. worksteal: an idle worker takes queued tests from a busy one,
# so a few long scenarios do not leave one core idle at the end. `-- -n 0` runs in one process.
PARALLEL = ["-n", "auto", "--dist", "worksteal"]


def _write_bytecode(session: nox.Session) -> None:
    """Let Python cache compiled modules in the session's environment, even where PYTHONDONTWRITEBYTECODE is
    set (as on the CI machine and in many Docker images). The suites start many fresh interpreters, each
    importing CrewAI's thousands of modules: without caches each compiles them anew (`import crewai`
    4.3 s -> 2.6 s, `otel-crew demo` 6.5 -> 4.3 s). An empty value is Python's "not set"."""
    session.env["PYTHONDONTWRITEBYTECODE"] = ""


def _suite(session: nox.Session, crewai: str, *arguments: str) -> None:
    _write_bytecode(session)
    session.install("-e", ".[agentops,test]", *CREWAI_LINES[crewai])
    # (CrewAI's task-output store: tests/conftest.py gives each test process its own.)
    session.run("pytest", *PARALLEL, *arguments, *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (MkDocs, Material theme), built offline with --strict: a broken link or anchor,
    or a page missing from the nav, fails it. Its code blocks run in tests/test_docs_examples.py."""
    session.install("-e", ".[docs]")
    session.env["NO_MKDOCS_2_WARNING"] = "1"  # Material's banner about its successor, not about these docs
    session.run("mkdocs", "build", "--strict", "--site-dir", f"{session.create_tmp()}/site")


@nox.session
@nox.parametrize("crewai", list(CREWAI_LINES))
def tests(session: nox.Session, crewai: str) -> None:
    """The whole suite against one CrewAI line (real CrewAI, real AgentOps, offline)."""
    _suite(session, crewai, *([] if crewai == LATEST else ["-m", "not one_line"]))


@nox.session(default=False)
def quick(session: nox.Session) -> None:
    """The inner loop: the tests under the paths given, on the latest line, without the fresh-interpreter
    scenarios (`nox -R -s quick -- tests/roots`; docs/contributing.md)."""
    _suite(session, LATEST, "-q", "-m", "not scenario")


@nox.session
def bench(session: nox.Session) -> None:
    """The full benchmarks, beside OpenLLMetry's and OpenInference's CrewAI instrumentors: tables into BENCHMARKS.md.
    (The suite's tests/test_benchmark_suite.py runs their short form on otel-crew alone.)"""
    _write_bytecode(session)
    session.install("-e", ".[crewai,agentops,bench]")
    session.env["CREWAI_STORAGE_DIR"] = f"{session.virtualenv.location}/crewai-storage"
    session.env["OTEL_CREW_STATE_DIR"] = session.create_tmp()  # the open-roots journal, as by default, but not in $HOME
    session.run("python", "-m", "benchmarks", *session.posargs)


# CrewAI's own suite comes from the sdist of the latest supported release.
CREWAI_SUITE_RELEASE = "1.15.30"
# a2a: A2A agents; file-processing (crewai-files) and anthropic: small, and without them whole
# files of the suite do not import (the agent executor's among them). The other LLM providers'
# tests fail the same way in both runs without their SDKs.
CREWAI_SUITE_EXTRAS = "a2a,anthropic,file-processing"
# What CrewAI's tests import or configure beyond crewai[a2a], pinned as CrewAI's workspace pins them.
CREWAI_SUITE_TEST_DEPS = [
    "pytest==9.0.3",
    "pytest-asyncio==1.3.0",
    "vcrpy==8.2.1",
    "pytest-recording==0.13.4",
    "pytest-timeout==2.4.0",
    "pytest-xdist==3.8.0",
]


@nox.session
def crewai_suite(session: nox.Session) -> None:
    """CrewAI's own test suite (from its sdist), plain and instrumented: fails on any test whose outcome differs.
    Slow (about 10 minutes on 2 cores), so not in the default list; CI runs it (docs/contributing.md)."""
    _write_bytecode(session)
    crewai = f"crewai[{CREWAI_SUITE_EXTRAS}]=={CREWAI_SUITE_RELEASE}"
    session.install("-e", ".[agentops]", crewai, *CREWAI_SUITE_TEST_DEPS, "pip")  # pip: for its `download`
    work = session.create_tmp()
    session.run(
        "python", "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
        f"crewai=={CREWAI_SUITE_RELEASE}", "-d", work,
    )  # fmt: skip
    sdist = f"{work}/crewai-{CREWAI_SUITE_RELEASE}.tar.gz"
    session.run("python", "crewai_suite/run.py", "--sdist", sdist, *session.posargs)
