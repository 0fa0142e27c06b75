"""The on-disk journal of open roots, so that a root whose process dies can still be ended.

A root span only leaves its process when it ends. When the process is killed
(SIGKILL, OOM, an evicted pod) its root is lost, the children it exported hang
under a parent that does not exist, and its AgentOps session stays open. This
journal keeps, per open root, what is needed to end it from another process:
the root's span (ids, parent, name, kind, start, attributes, resource, scope),
the last time activity was seen in its trace, the AgentOps session's span when
one belongs to it, and the process that owns it (pid, start time, host).

It is SQLite in WAL mode (standard library only), one file per state
directory: ``OTEL_CREW_STATE_DIR``, default the platform's user state
directory; ``off`` or ``:memory:`` switch it off. A row holds one open
root: inserted for its start, updated for its session and its last activity,
deleted at its end; never written per child span. The owning process writes
behind: the unclosed-root processor keeps the roots it has not written and
the written ones that ended (nothing else happens on the span's thread), and
hands them to ``write_pending``, with the sessions queued here, in one
transaction every second or so while there is something to write, and at
once at ``force_flush`` and shutdown; a root that ends before that is never
written at all. A journal that cannot be used (corrupt, locked, not
writable) gives one warning and is left alone from then on; the pipeline
never notices.

``roots.recovery`` claims and ends the entries of processes that are gone.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState
from opentelemetry.util.types import AttributeValue

from otel_crew import config
from otel_crew.roots.process_identity import ProcessIdentity, current_process, is_gone

__all__ = [
    "JournalEntry",
    "RootJournal",
    "SpanSnapshot",
    "journal_at",
    "journal_from_env",
    "note_session",
]

_LOG = logging.getLogger(__name__)

FILE_NAME = "open-roots.sqlite3"
BUSY_TIMEOUT_SECONDS = 2.0
"""How long a write waits for another process's write before the journal gives up."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS open_roots (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    root TEXT NOT NULL,
    session TEXT,
    last_activity_ns INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    process_start TEXT NOT NULL,
    host TEXT NOT NULL,
    claimed_pid INTEGER,
    claimed_start TEXT,
    root_done INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (trace_id, span_id)
) WITHOUT ROWID
"""


# -- what is kept of a span ----------------------------------------------------------


def _json_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value for key, value in (attributes or {}).items()}


def _attributes_from_json(attributes: Mapping[str, Any]) -> dict[str, AttributeValue]:
    return {key: tuple(value) if isinstance(value, list) else value for key, value in attributes.items()}


def _context_dict(context: SpanContext) -> dict[str, Any]:
    return {
        "trace_id": context.trace_id,
        "span_id": context.span_id,
        "flags": int(context.trace_flags),
        "state": list(context.trace_state.items()),
        "remote": context.is_remote,
    }


def _context_from(data: Mapping[str, Any]) -> SpanContext:
    return SpanContext(
        trace_id=data["trace_id"],
        span_id=data["span_id"],
        is_remote=data["remote"],
        trace_flags=TraceFlags(data["flags"]),
        trace_state=TraceState([tuple(pair) for pair in data["state"]]),
    )


@dataclass(frozen=True)
class SpanSnapshot:
    """Everything of a started span that is needed to export it, ended, later."""

    data: Mapping[str, Any]

    @classmethod
    def of(cls, span: ReadableSpan) -> SpanSnapshot:
        assert span.context is not None  # SDK spans always have one
        scope = span.instrumentation_scope
        return cls(
            {
                "name": span.name,
                "context": _context_dict(span.context),
                "parent": None if span.parent is None else _context_dict(span.parent),
                "kind": span.kind.name,
                "start_ns": span.start_time,
                "attributes": _json_attributes(span.attributes),
                "resource": _json_attributes(span.resource.attributes),
                "resource_schema_url": span.resource.schema_url,
                "scope": None if scope is None else [scope.name, scope.version, scope.schema_url],
            }
        )

    @property
    def context(self) -> SpanContext:
        return _context_from(self.data["context"])

    @property
    def name(self) -> str:
        name: str = self.data["name"]
        return name

    @property
    def start_ns(self) -> int:
        start: int = self.data["start_ns"]
        return start

    def to_json(self) -> str:
        return json.dumps(self.data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> SpanSnapshot:
        """Raises ValueError, KeyError or TypeError for what is not a snapshot."""
        snapshot = cls(json.loads(text))
        snapshot.ended(snapshot.start_ns, Status(StatusCode.UNSET), {})  # every field is there and makes sense
        return snapshot

    def ended(self, end_ns: int, status: Status, attributes: Mapping[str, AttributeValue]) -> ReadableSpan:
        """The span as if it had ended at ``end_ns`` with ``status`` and these extra attributes."""
        data = self.data
        scope = data["scope"]
        return ReadableSpan(
            name=data["name"],
            context=self.context,
            parent=None if data["parent"] is None else _context_from(data["parent"]),
            resource=Resource(_attributes_from_json(data["resource"]), data["resource_schema_url"] or None),
            attributes={**_attributes_from_json(data["attributes"]), **attributes},
            kind=SpanKind[data["kind"]],
            status=status,
            start_time=data["start_ns"],
            end_time=max(end_ns, data["start_ns"]),
            instrumentation_scope=None if scope is None else InstrumentationScope(*scope),
        )


@dataclass(frozen=True)
class JournalEntry:
    """One open root of a process that is gone, as claimed for recovery."""

    root: SpanSnapshot
    session: SpanSnapshot | None
    last_activity_ns: int
    process: ProcessIdentity
    root_done: bool  # exported already by a recoverer that died before it finished


# -- the journal ---------------------------------------------------------------------------

ResultT = TypeVar("ResultT")


_BY_KEY = " WHERE trace_id = ? AND span_id = ?"


_INSERT = (
    "INSERT OR REPLACE INTO open_roots"
    " (trace_id, span_id, root, session, last_activity_ns, pid, process_start, host) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_Key = tuple[int, int]  # trace id, span id


def _key(context: SpanContext) -> _Key:
    return context.trace_id, context.span_id


def _hex(key: _Key) -> tuple[str, str]:
    return f"{key[0]:032x}", f"{key[1]:016x}"


def _ids(context: SpanContext) -> tuple[str, str]:
    return _hex(_key(context))


def _snapshot_json(span: ReadableSpan) -> str | None:
    """The span's snapshot, taken on the watcher's thread while the span may
    still be changing (its attributes are a live view: a dict resized under
    the copy is copied again); None if it never holds still."""
    for _ in range(3):
        try:
            return SpanSnapshot.of(span).to_json()
        except RuntimeError:  # "dictionary changed size during iteration"
            continue
    _LOG.debug("otel-crew: span %r changed while it was journaled; left out", span.name)
    return None


def _start_row(key: _Key, span: ReadableSpan, session: ReadableSpan | None) -> tuple[object, ...] | None:
    root = _snapshot_json(span)
    if root is None or span.start_time is None:
        return None
    process = current_process()
    snapshot = None if session is None else _snapshot_json(session)
    return (*_hex(key), root, snapshot, span.start_time, process.pid, process.start, process.host)


class RootJournal:
    """One journal file. Thread-safe; reopened in a forked child; every
    operation swallows the journal's own failures (one warning, then off)."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, FILE_NAME)
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid = -1
        self._broken = False
        self._forget_pending()

    def _forget_pending(self) -> None:
        """No sessions queued (at construction, and in a forked child: the parent's roots are the parent's)."""
        self._pending_lock = threading.Lock()
        # Sessions noted since the last write, each with whether it already found no row once.
        self._sessions: dict[_Key, tuple[ReadableSpan, bool]] = {}

    @property
    def usable(self) -> bool:
        return not self._broken

    def _connect(self) -> sqlite3.Connection:
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        connection = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
        )
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")  # durable across a killed process, which is the point
            connection.execute(_SCHEMA)
        except BaseException:
            connection.close()
            raise
        return connection

    def _run(self, operation: Callable[[sqlite3.Connection], ResultT], default: ResultT) -> ResultT:
        """``operation`` on the connection under the lock; on the journal's own
        failure: one warning, the journal off, ``default``."""
        if self._broken:
            return default
        with self._lock:
            try:
                if self._connection is None or self._pid != os.getpid():
                    # A connection must not cross a fork: the child opens its own
                    # (the parent's is left alone, not closed, as SQLite asks).
                    self._connection = self._connect()
                    self._pid = os.getpid()
                return operation(self._connection)
            except (sqlite3.Error, OSError) as error:
                self._broken = True
                _LOG.warning(
                    "otel-crew: the open-roots journal %s cannot be used (%s: %s); "
                    "roots of this process will not be recovered if it dies",
                    self.path,
                    type(error).__name__,
                    error,
                )
                return default

    # -- written by the owning process, behind ---------------------------------------

    def session_opened(self, root: SpanContext, session: ReadableSpan) -> None:
        """Queue the session span of an open root (no I/O): the next write puts it in the root's row."""
        with self._pending_lock:
            self._sessions[_key(root)] = (session, False)

    def has_pending(self) -> bool:
        return bool(self._sessions)

    def write_pending(self, starts: Sequence[ReadableSpan], ends: Sequence[SpanContext]) -> int:
        """In one transaction: insert the rows of ``starts`` (open roots not written yet), delete those of
        ``ends`` (roots written before that have ended) and put the sessions queued since the last write in
        their rows. A session whose row is not there yet (its root's start is in the next write) waits for
        one more write; one whose root never gets a row (it ended first, or is not journaled) is then
        dropped. Return how many rows were touched."""
        with self._pending_lock:
            sessions, self._sessions = self._sessions, {}
        deletes = [_key(context) for context in ends]
        for key in deletes:
            sessions.pop(key, None)
        inserts = []
        for span in starts:
            assert span.context is not None  # SDK spans always have one
            key = _key(span.context)
            session = sessions.pop(key, None)
            row = _start_row(key, span, None if session is None else session[0])
            if row is not None:
                inserts.append(row)
        updates = [(key, _snapshot_json(session), retried) for key, (session, retried) in sessions.items()]
        if not (inserts or updates or deletes):
            return 0

        def write(db: sqlite3.Connection) -> list[tuple[_Key, bool]]:
            with _transaction(db, "BEGIN"):
                db.executemany(_INSERT, inserts)
                missed = [
                    (key, retried)
                    for key, snapshot, retried in updates
                    if db.execute("UPDATE open_roots SET session = ?" + _BY_KEY, (snapshot, *_hex(key))).rowcount == 0
                ]
                db.executemany("DELETE FROM open_roots" + _BY_KEY, [_hex(key) for key in deletes])
            return missed

        missed: list[tuple[_Key, bool]] = self._run(write, [])
        with self._pending_lock:
            for key, retried in missed:
                if not retried:
                    self._sessions.setdefault(key, (sessions[key][0], True))
        return len(inserts) + len(updates) - len(missed) + len(deletes)

    def _execute(self, statement: str, parameters: Sequence[object]) -> None:
        self._run(lambda db: db.execute(statement, parameters), None)

    def activity(self, seen: Sequence[tuple[SpanContext, int]]) -> None:
        """The last activity (epoch ns) seen in each root's trace, in one transaction."""
        if not seen:
            return
        rows = [(at, *_ids(context)) for context, at in seen]

        def write(db: sqlite3.Connection) -> None:
            with _transaction(db, "BEGIN"):
                db.executemany("UPDATE open_roots SET last_activity_ns = ?" + _BY_KEY, rows)

        self._run(write, None)

    # -- read by the process that owns a root, for its remote parts ------------------------------------

    def remote_activity(self, trace_id: int) -> int | None:
        """The latest activity (epoch ns) journaled by other live processes for roots of ``trace_id``: the
        local parts of a root of this process that handed work to them (``remote.py``). None if there is
        none (not started, not written yet, ended, or their process is gone)."""
        me = current_process()

        def read(db: sqlite3.Connection) -> list[tuple[int, int, str, str]]:
            statement = (
                "SELECT last_activity_ns, pid, process_start, host FROM open_roots"
                " WHERE trace_id = ? AND claimed_pid IS NULL AND root_done = 0"
            )
            return db.execute(statement, (f"{trace_id:032x}",)).fetchall()

        none: list[tuple[int, int, str, str]] = []
        latest = [
            last
            for last, pid, start, host in self._run(read, none)
            if (pid, host) != (me.pid, me.host) and not is_gone(ProcessIdentity(pid, start, host))
        ]
        return max(latest, default=None)

    # -- recovery, by any process of the host ------------------------------------------------

    def claim_dead(self, max_age_seconds: float) -> tuple[list[JournalEntry], int]:
        """Claim, in one write transaction (so two recoverers never claim the
        same entry), every entry whose process is gone and that no live
        recoverer holds; drop those older than ``max_age_seconds``. Returns the
        claimed entries and how many were dropped."""
        me = current_process()
        oldest = time.time_ns() - int(max_age_seconds * 1e9)

        def claim(db: sqlite3.Connection) -> tuple[list[JournalEntry], int]:
            claimed: list[JournalEntry] = []
            dropped = 0
            with _transaction(db, "BEGIN IMMEDIATE"):
                rows = db.execute(
                    "SELECT trace_id, span_id, root, session, last_activity_ns, pid, process_start, host,"
                    " claimed_pid, claimed_start, root_done FROM open_roots WHERE host = ?",
                    (me.host,),
                ).fetchall()
                for trace_id, span_id, root, session, last, pid, start, host, by_pid, by_start, done in rows:
                    owner = ProcessIdentity(pid, start, host)
                    if not is_gone(owner):
                        continue
                    if by_pid is not None and not is_gone(ProcessIdentity(by_pid, by_start, host)):
                        continue  # a live recoverer is on it
                    key = (trace_id, span_id)
                    if last < oldest:
                        db.execute("DELETE FROM open_roots" + _BY_KEY, key)
                        dropped += 1
                        continue
                    try:
                        entry = JournalEntry(
                            root=SpanSnapshot.from_json(root),
                            session=None if session is None else SpanSnapshot.from_json(session),
                            last_activity_ns=last,
                            process=owner,
                            root_done=bool(done),
                        )
                    except (ValueError, KeyError, TypeError):
                        _LOG.debug("otel-crew: an unreadable journal entry is dropped", exc_info=True)
                        db.execute("DELETE FROM open_roots" + _BY_KEY, key)
                        dropped += 1
                        continue
                    db.execute(
                        "UPDATE open_roots SET claimed_pid = ?, claimed_start = ?" + _BY_KEY,
                        (me.pid, me.start, *key),
                    )
                    claimed.append(entry)
            return claimed, dropped

        nothing: tuple[list[JournalEntry], int] = ([], 0)
        return self._run(claim, nothing)

    def root_recovered(self, entry: JournalEntry) -> None:
        """The root is exported; only its session may be left to end."""
        self._execute("UPDATE open_roots SET root_done = 1" + _BY_KEY, _ids(entry.root.context))

    def release(self, entry: JournalEntry) -> None:
        """Give a claimed entry back (its session could not be ended now)."""
        unclaim = "UPDATE open_roots SET claimed_pid = NULL, claimed_start = NULL" + _BY_KEY
        self._execute(unclaim, _ids(entry.root.context))

    def finished(self, entry: JournalEntry) -> None:
        self._execute("DELETE FROM open_roots" + _BY_KEY, _ids(entry.root.context))

    def entries(self) -> int:
        """How many entries there are (tests, doctor)."""
        count: int = self._run(lambda db: db.execute("SELECT COUNT(*) FROM open_roots").fetchone()[0], 0)
        return count


class _transaction:  # noqa: N801 - used as a context manager, like a function
    """BEGIN ... COMMIT, or ROLLBACK when the block raises."""

    def __init__(self, db: sqlite3.Connection, begin: str) -> None:
        self._db = db
        self._begin = begin

    def __enter__(self) -> None:
        self._db.execute(self._begin)

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")


_journals: dict[str, RootJournal] = {}
_journals_lock = threading.Lock()


def _fresh_locks_in_child() -> None:
    """A lock held by another thread at fork time would never be released in the child."""
    global _journals_lock
    _journals_lock = threading.Lock()
    for journal in _journals.values():
        journal._lock = threading.Lock()
        journal._forget_pending()


if hasattr(os, "register_at_fork"):  # POSIX only
    os.register_at_fork(after_in_child=_fresh_locks_in_child)


def journal_at(directory: str) -> RootJournal:
    """The process's journal in ``directory`` (one object per directory)."""
    directory = os.path.abspath(directory)
    with _journals_lock:
        journal = _journals.get(directory)
        if journal is None:
            journal = _journals[directory] = RootJournal(directory)
    return journal


def journal_from_env() -> RootJournal | None:
    """The journal in the state directory the environment names (``config.state_dir()``),
    or None when it is switched off."""
    directory = config.state_dir()
    return None if directory is None else journal_at(directory)


def note_session(root: SpanContext, session: ReadableSpan) -> None:
    """Record the AgentOps session span that belongs to the open root ``root``,
    in whichever journal of this process holds that root. Never raises."""
    try:
        with _journals_lock:
            journals: Iterable[RootJournal] = list(_journals.values())
        for journal in journals:
            journal.session_opened(root, session)
    except Exception:
        _LOG.debug("otel-crew: the session of a root could not be journaled", exc_info=True)
