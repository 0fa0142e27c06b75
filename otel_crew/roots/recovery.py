"""Ending the roots of processes that died with them open.

Every journal entry (``journal.py``) whose process is gone is claimed, once,
and its root span is handed to the span processor given (a provider's active
processor: the user's own processors and exporters) as it would have ended:
the original trace and span ids, parent, name, start time and attributes;
end time the last activity seen in its trace; status ERROR, "process ended
before the root did"; ``otel_crew.root.recovered=true``. The children that
process exported then hang under a real parent.

The session that belonged to the root is ended by the ``end_session`` callback
(the AgentOps side lives in ``agentops_sessions``: roots imports nothing of
it). A session that cannot be ended now (AgentOps not initialised here) is
left in the journal, claimed by nobody, for a later recovery; its root is not
exported again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import Status, StatusCode

from otel_crew import config
from otel_crew.roots.journal import JournalEntry, RootJournal, SpanSnapshot, journal_from_env
from otel_crew.semconv import RECOVERED_ATTRIBUTE

__all__ = ["RECOVERED_DESCRIPTION", "Recovered", "SessionEnder", "recover_dead_roots"]

_LOG = logging.getLogger(__name__)

RECOVERED_DESCRIPTION = "process ended before the root did"

SessionEnder = Callable[[SpanSnapshot, int, str], bool]
"""(session span, end time in epoch ns, reason) -> whether the session was handed over."""


@dataclass(frozen=True)
class Recovered:
    """What one recovery did."""

    roots: int = 0
    sessions: int = 0
    sessions_left: int = 0  # kept in the journal for a process that can end them
    dropped: int = 0  # older than the age limit: dropped, not ended


def recover_dead_roots(
    processor: SpanProcessor,
    end_session: SessionEnder | None = None,
    journal: RootJournal | None = None,
    max_age: float | None = None,
) -> Recovered:
    """End every root of this host's dead processes, once; never raises.

    Args:
        processor: where the recovered root spans go (``on_end``).
        end_session: ends a root's session; None leaves sessions in the journal.
        journal: default: the one ``OTEL_CREW_STATE_DIR`` names (none: nothing to do).
        max_age: seconds after which an entry is dropped instead (default
            ``OTEL_CREW_STATE_MAX_AGE_DAYS``, 7 days).
    """
    if max_age is not None and not max_age > 0:
        raise ValueError(f"recover_dead_roots(max_age=...): must be a positive number of seconds, got {max_age!r}")
    journal = journal if journal is not None else journal_from_env()
    if journal is None:
        return Recovered()
    entries, dropped = journal.claim_dead(max_age if max_age is not None else config.state_max_age_s())
    if dropped:
        _LOG.info("otel-crew: dropped %d journal entries of dead processes' roots, too old to recover", dropped)
    roots = sessions = left = 0
    for entry in entries:
        if not entry.root_done:
            _export_root(processor, entry)
            roots += 1
            journal.root_recovered(entry)
        if entry.session is not None and not _end_session(end_session, entry):
            journal.release(entry)
            left += 1
            continue
        sessions += entry.session is not None
        journal.finished(entry)
    if roots or sessions:
        _LOG.warning(
            "otel-crew: ended %d root(s) and %d AgentOps session(s) of processes that died with them open",
            roots,
            sessions,
        )
    return Recovered(roots=roots, sessions=sessions, sessions_left=left, dropped=dropped)


def _export_root(processor: SpanProcessor, entry: JournalEntry) -> None:
    span = entry.root.ended(
        entry.last_activity_ns, Status(StatusCode.ERROR, RECOVERED_DESCRIPTION), {RECOVERED_ATTRIBUTE: True}
    )
    try:
        processor.on_end(span)
    except Exception:
        _LOG.warning("otel-crew: a span processor raised on a recovered root %r (contained)", span.name, exc_info=True)


def _end_session(end_session: SessionEnder | None, entry: JournalEntry) -> bool:
    if end_session is None or entry.session is None:
        return False
    try:
        return end_session(entry.session, entry.last_activity_ns, RECOVERED_DESCRIPTION)
    except Exception:
        _LOG.warning("otel-crew: ending a dead root's AgentOps session raised (contained)", exc_info=True)
        return False
