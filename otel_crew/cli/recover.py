"""``otel-crew recover``: end the roots of this host's dead processes, now.

The same recovery ``instrument()`` runs, for when no instrumented process is
about to start: the roots go out through a provider built from the standard
OpenTelemetry variables (``configure()``), the sessions through AgentOps,
initialised here when ``AGENTOPS_API_KEY`` is set.
"""

from __future__ import annotations

import importlib.util
import os

from otel_crew.config import configure
from otel_crew.instrumentation.crash_recovery import recover_dead_roots_into
from otel_crew.roots.journal import journal_from_env

__all__ = ["recover_now"]

AGENTOPS_FLUSH_SECONDS = 10.0


def _start_agentops() -> bool:
    """Initialise AgentOps when it is installed and has a key; whether it was."""
    if importlib.util.find_spec("agentops") is None or not os.environ.get("AGENTOPS_API_KEY"):
        return False
    import agentops

    agentops.init(auto_start_session=False, instrument_llm_calls=False)
    return True


def recover_now() -> str:
    """Recover, flush, and say what was done."""
    journal = journal_from_env()
    if journal is None:
        return "the open-roots journal is switched off (OTEL_CREW_STATE_DIR); nothing to recover"
    provider = configure(instrument=False)
    sessions = _start_agentops()
    try:
        recovered = recover_dead_roots_into(provider, end_sessions=sessions)
        if sessions and recovered.sessions:
            from otel_crew.agentops_sessions.recovery import flush_agentops

            flush_agentops(AGENTOPS_FLUSH_SECONDS)
    finally:
        provider.shutdown()
    lines = [f"{journal.path}: ended {recovered.roots} root(s) and {recovered.sessions} AgentOps session(s)"]
    if recovered.sessions_left:
        lines.append(f"{recovered.sessions_left} session(s) left for a process with AgentOps (AGENTOPS_API_KEY unset)")
    if recovered.dropped:
        lines.append(f"{recovered.dropped} entr(y/ies) too old to recover were dropped")
    return "\n".join(lines)
