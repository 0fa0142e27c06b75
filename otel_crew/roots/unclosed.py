"""``UnclosedRootProcessor``: roots left open are flagged after a timeout, and nothing leaks.

A root (see ``roots.py``) that is never ended never exports whole, never ends
its AgentOps session and stays in memory. This processor watches every root:

- *idle* limit: no span started or ended in the root's trace for that long;
- *age* limit: the root has been open for that long;
- when either passes, the root is **flagged**, once: a warning log line, an
  event on the still-open root span, the ``otel_crew.roots.unclosed`` counter,
  and the user's callback;
- optionally, a further limit later, the root is **force-ended** with status
  ERROR and ``otel_crew.root.unclosed=true``;
- at shutdown (and process exit) every open root is flagged and ended, so its
  spans are exported. ``force_flush`` ends nothing: a flush in the middle of a
  pipeline leaves its root open, as the user left it;
- a root that handed work to other processes (``remote.py``) is not idle
  while that work is: before flagging it for idleness, the watcher reads the
  journal for the activity its remote parts' own processors wrote there (the
  shared state directory is the channel); a remote part that died or stopped
  reporting no longer counts;
- open roots are journaled on disk (``journal.py``), so that a later
  process can end a root if this one dies: its start, end and last activity
  are written by the watcher thread every ``JOURNAL_INTERVAL`` seconds while
  there is something to write (a root that lasts less is never written), and
  by ``force_flush`` and shutdown at once.

The hot path is a dict update under a short lock. A new root's first
deadline is its start plus the shorter limit, so new roots come due in the
order they started: they wait in an insertion-ordered dict, and only a root
still open at that first deadline moves to a heap of real deadlines (an idle
deadline is recomputed when it comes due; activity since then pushes it
further). One background thread sleeps until the earliest; no tick scans all
roots, and a root that ends before its first deadline costs no heap work.
"""

from __future__ import annotations

import atexit
import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from weakref import WeakMethod

from opentelemetry import metrics
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanContext, Status, StatusCode

from otel_crew.roots.definition import RootIndex, span_key, starts_root
from otel_crew.roots.journal import RootJournal, journal_from_env
from otel_crew.roots.lifecycle import on_exit, on_fork_in_child
from otel_crew.roots.remote import MARKER_VALUE, on_handoff
from otel_crew.semconv import SCHEMA_URL, UNCLOSED_ATTRIBUTE
from otel_crew.version import __version__

__all__ = ["UnclosedRoot", "UnclosedRootProcessor"]

_LOG = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT = 15 * 60.0
"""Seconds with no span started or ended in a root's trace before it is flagged."""
DEFAULT_MAX_AGE = 4 * 60 * 60.0
"""Seconds a root may stay open at all before it is flagged."""
DEFAULT_MAX_TRACKED_ROOTS = 10_000
"""Open roots watched at once; past this the oldest is flagged and dropped."""

FLAG_EVENT = "otel_crew.root.unclosed"

COALESCE_SECONDS = 0.05
"""The watcher wakes this long after the earliest deadline, so that deadlines
close together (100,000 roots opened in one burst) are handled in one pass,
not one wake-up each."""
JOURNAL_INTERVAL = 1.0
"""Seconds between the watcher's writes to the journal: the most a root's start
(or end) waits to be on disk."""


@dataclass(frozen=True)
class UnclosedRoot:
    """What the callback is told about a flagged root."""

    name: str
    trace_id: str
    span_id: str
    age_seconds: float
    idle_seconds: float
    open_children: int | None  # None where counting would cost a scan per root (the cap's drops)
    reason: str
    span: Span


class _Root:
    """One open root: a small fixed record."""

    __slots__ = (
        "ended",
        "flagged_at",
        "force_ending",
        "handed_off",
        "heap_entry",
        "journaled",
        "key",
        "last_activity",
        "outer",
        "span",
        "started",
    )

    def __init__(self, span: Span, now: float, outer: _Root | None) -> None:
        self.span = span
        self.key = span_key(span)
        self.started = now
        self.last_activity = now
        self.flagged_at: float | None = None
        self.ended = False
        self.force_ending = False
        self.heap_entry: int | None = None  # sequence number of its live heap entry
        self.outer = outer  # the root this one nests in (a workflow under a request span)
        self.journaled: float | None = None  # the last_activity its journal row has; None: no row (yet)
        self.handed_off = False  # work of this root runs in other processes too

    def epoch_ns(self, at: float) -> int:
        """A time of the processor's clock as epoch ns: the span's own start plus the clock's advance."""
        return int(self.span.start_time or 0) + int((at - self.started) * 1e9)


_NAME = "UnclosedRootProcessor"


def _optional_seconds(option: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{_NAME}({option}=...): expected seconds or None, got {value!r}")
    if math.isnan(value) or value <= 0:
        raise ValueError(f"{_NAME}({option}=...): must be a positive number of seconds, got {value!r}")
    return float(value)


def _require_callable(option: str, value: object, optional: bool) -> None:
    if not callable(value) and not (optional and value is None):
        raise TypeError(f"{_NAME}({option}=...): expected a callable, got {value!r}")


def _weak_callback(
    method: WeakMethod[Callable[[CallbackOptions], Iterable[Observation]]],
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    """A meter callback that does not keep its processor alive (meters live
    as long as their provider; processors come and go with instrument())."""

    def observe(options: CallbackOptions) -> Iterable[Observation]:
        bound = method()
        return () if bound is None else bound(options)

    return observe


class UnclosedRootProcessor(SpanProcessor):
    """Flags roots left open; optionally ends them; ends them all at shutdown.

    Args:
        idle_timeout: seconds with no span started or ended in the root's
            trace before flagging (None: no idle limit).
        max_age: seconds since the root started before flagging (None: no
            age limit).
        force_end_after: seconds after flagging to end the root with ERROR
            (None: never; shutdown still ends it).
        on_unclosed: called once per flagged root with an ``UnclosedRoot``;
            its exceptions are logged and contained.
        max_tracked_roots: open roots watched at once; past it the oldest is
            flagged and no longer watched (counted in ``otel_crew.roots.dropped``).
        meter_provider: where the counters go (default: the global one).
        clock: monotonic seconds; replaceable in tests.
        journal: the on-disk journal of open roots (True: the one
            ``OTEL_CREW_STATE_DIR`` names; False: none; or a ``RootJournal``).
    """

    def __init__(
        self,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        max_age: float | None = DEFAULT_MAX_AGE,
        force_end_after: float | None = None,
        on_unclosed: Callable[[UnclosedRoot], Any] | None = None,
        max_tracked_roots: int = DEFAULT_MAX_TRACKED_ROOTS,
        meter_provider: MeterProvider | None = None,
        clock: Callable[[], float] = time.monotonic,
        journal: RootJournal | bool = True,
    ) -> None:
        self._idle = _optional_seconds("idle_timeout", idle_timeout)
        self._max_age = _optional_seconds("max_age", max_age)
        self._force_end_after = _optional_seconds("force_end_after", force_end_after)
        _require_callable("on_unclosed", on_unclosed, optional=True)
        _require_callable("clock", clock, optional=False)
        if isinstance(max_tracked_roots, bool) or not isinstance(max_tracked_roots, int) or max_tracked_roots < 1:
            raise ValueError(f"{_NAME}(max_tracked_roots=...): expected a positive int, got {max_tracked_roots!r}")
        self._on_unclosed = on_unclosed
        limits = [limit for limit in (self._idle, self._max_age) if limit is not None]
        self._first_limit = min(limits, default=math.inf)  # from a root's start to its first deadline
        self._max_tracked = max_tracked_roots
        self._clock = clock
        if not isinstance(journal, (bool, RootJournal)):
            raise TypeError(f"{_NAME}(journal=...): expected bool or RootJournal, got {journal!r}")
        self._journal = journal_from_env() if journal is True else journal or None
        meter = metrics.get_meter("otel_crew", __version__, meter_provider=meter_provider, schema_url=SCHEMA_URL)
        self._flagged_counter = meter.create_counter(
            "otel_crew.roots.unclosed", unit="{root}", description="Roots flagged as left open"
        )
        # Observed at collection time: no metric work per root on the hot path.
        meter.create_observable_up_down_counter(
            "otel_crew.roots.open",
            callbacks=[_weak_callback(WeakMethod(self._observe_open_roots))],
            unit="{root}",
            description="Roots open now",
        )
        self._dropped_counter = meter.create_counter(
            "otel_crew.roots.dropped", unit="{root}", description="Open roots no longer watched (cap reached)"
        )
        self._reset_state()
        self._shut_down = False
        self._exit_hook: Callable[[], None] | None = None  # registered with the worker: construction changes nothing
        on_fork_in_child(self._reset_state)
        on_handoff(self._handed_off)

    def _reset_state(self) -> None:
        """Fresh state: at construction, and in a forked child (which tracks
        only its own roots and starts its own worker when it needs one)."""
        self._lock = threading.Lock()
        self._polling = threading.Lock()
        self._journal_writing = threading.Lock()  # one write at a time: a root's delete never overtakes its insert
        self._wakeup = threading.Condition(self._lock)
        self._roots: dict[int, _Root] = {}
        self._fresh: dict[int, _Root] = {}  # roots before their first deadline, in the order they started
        self._index: RootIndex[_Root] = RootIndex()
        self._deadlines: list[tuple[float, int, _Root]] = []
        self._stale_deadlines = 0
        self._sequence = itertools.count()
        self._worker: threading.Thread | None = None
        self._stopping = False
        # What the worker's wait covers, so the hot path wakes it only when it must:
        # the clock time it wakes at, and whether a journal write is in view.
        self._wake_at = math.inf
        self._journal_timed = False
        self._next_journal_write = time.monotonic() + JOURNAL_INTERVAL  # real time, whatever the clock
        # What the journal's next write takes (under the lock): roots not written yet, and written ones that ended.
        self._unwritten: dict[int, _Root] = {}
        self._written_ended: list[SpanContext] = []

    # -- the hot path ---------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        parent = span.parent
        if starts_root(parent):
            self._start_root(span, parent, self._clock())
            return
        record = self._index.add_child(span, parent)  # type: ignore[arg-type]  # a child's parent is not None
        if record is not None:
            record.last_activity = now = self._clock()
            if record.outer is not None:
                self._touch(record.outer, now)

    def on_end(self, span: ReadableSpan) -> None:
        key = span.context.span_id  # span_key(span), one call fewer
        record = self._index.pop(key, None)
        if record is None:
            return
        if record.key == key:  # on_end gets a snapshot, not the span itself
            self._end_root(record)
            return
        record.last_activity = now = self._clock()
        if record.outer is not None:
            self._touch(record.outer, now)

    @staticmethod
    def _touch(record: _Root | None, now: float) -> None:
        """The activity of a child span reaches every root it is nested in (a
        workflow under a request span keeps that root alive too). No lock: a
        float store is atomic, and the latest writer is as good as any (the
        deadline is only recomputed when it comes due)."""
        while record is not None:
            record.last_activity = now
            record = record.outer

    def _start_root(self, span: Span, parent: SpanContext | None, now: float) -> None:
        outer = self._index.add_child(span, parent) if parent is not None and not parent.is_remote else None
        record = _Root(span, now, outer)
        self._index[record.key] = record
        dropped = None
        with self._lock:
            self._roots[record.key] = record
            if len(self._roots) > self._max_tracked:
                dropped = self._roots.pop(next(iter(self._roots)))
                self._forget(dropped)
            self._fresh[record.key] = record
            if self._journal is not None:
                self._unwritten[record.key] = record  # sampled or not: the write looks
            if self._worker is None and not self._shut_down:
                self._start_worker()
            elif now + self._first_limit + COALESCE_SECONDS < self._wake_at or (
                self._journal is not None and not self._journal_timed
            ):
                self._wakeup.notify()  # the worker would sleep past this root's deadline or journal write
        if dropped is not None:
            self._dropped_counter.add(1)
            self._flag(dropped, self._clock(), "too many open roots; no longer watched", None, dropped=True)

    def _handed_off(self, context: SpanContext) -> str | None:
        """A span of a root watched here hands work to another process."""
        record = self._index.get(context.span_id)
        if record is None:
            return None
        record.handed_off = True
        return MARKER_VALUE

    def _end_root(self, record: _Root) -> None:
        with self._lock:
            if self._roots.pop(record.key, None) is None:
                return  # dropped already, or ended by us before
            self._forget(record)

    def write_journal(self) -> int:
        """Write the roots started and ended since the last write (and the
        sessions queued in the journal), then the last activity of every
        journaled root that saw some since; return how many roots' activity
        was written. The worker calls this every ``JOURNAL_INTERVAL`` seconds
        while there is something to write; ``force_flush`` and tests may too."""
        with self._journal_writing:
            return self._write_journal()

    def _write_journal(self) -> int:
        with self._lock:
            self._next_journal_write = time.monotonic() + JOURNAL_INTERVAL
            starts, self._unwritten = self._unwritten, {}
            ends, self._written_ended = self._written_ended, []
            sampled = [record for record in starts.values() if record.span.context.trace_flags.sampled]
            for record in sampled:
                record.journaled = record.started  # its row's last activity: the span's start
            changed = [r for r in self._roots.values() if r.journaled is not None and r.journaled != r.last_activity]
        if self._journal is None:
            return 0
        self._journal.write_pending([record.span for record in sampled], ends)
        if not changed:
            return 0
        seen = []
        for record in changed:
            record.journaled = last = record.last_activity  # read once: other threads move it on
            seen.append((record.span.get_span_context(), record.epoch_ns(last)))
        self._journal.activity(seen)
        return len(seen)

    def _forget(self, record: _Root) -> None:
        """Under the lock: the record is done; its heap entry goes stale."""
        record.ended = True
        self._fresh.pop(record.key, None)
        if self._unwritten.pop(record.key, None) is None and record.journaled is not None:
            record.journaled = None  # its row is deleted at the next write; one never written is just forgotten
            self._written_ended.append(record.span.get_span_context())
        if record.heap_entry is not None:
            record.heap_entry = None
            self._stale_deadlines += 1
            if self._stale_deadlines > 1024 and self._stale_deadlines * 2 > len(self._deadlines):
                self._deadlines = [entry for entry in self._deadlines if entry[2].heap_entry == entry[1]]
                heapq.heapify(self._deadlines)
                self._stale_deadlines = 0

    # -- deadlines ------------------------------------------------------------

    def _deadline_of(self, record: _Root) -> float | None:
        if record.flagged_at is not None:
            return None if self._force_end_after is None else record.flagged_at + self._force_end_after
        limits = []
        if self._idle is not None:
            limits.append(record.last_activity + self._idle)
        if self._max_age is not None:
            limits.append(record.started + self._max_age)
        return min(limits) if limits else None

    def _schedule(self, record: _Root) -> None:
        """Under the lock: push the record's next deadline, waking the worker
        only if it would otherwise sleep past it (most roots: never, so a root
        costs no thread switch)."""
        deadline = self._deadline_of(record)
        if deadline is None:
            return
        sequence = next(self._sequence)
        record.heap_entry = sequence
        heapq.heappush(self._deadlines, (deadline, sequence, record))
        if deadline + COALESCE_SECONDS < self._wake_at:
            self._wakeup.notify()

    def _take_due(self, now: float) -> list[_Root]:
        """Under the lock: pop the records whose deadline has truly passed."""
        due = []
        for record in self._fresh_at_first_deadline(now):
            del self._fresh[record.key]
            deadline = self._deadline_of(record)
            if deadline is not None and deadline <= now:
                due.append(record)
            else:
                self._schedule(record)  # activity moved the idle deadline on
        while self._deadlines and self._deadlines[0][0] <= now:
            _, sequence, record = heapq.heappop(self._deadlines)
            if record.heap_entry != sequence:
                self._stale_deadlines = max(0, self._stale_deadlines - 1)
                continue
            record.heap_entry = None
            deadline = self._deadline_of(record)
            if deadline is not None and deadline > now:
                self._schedule(record)  # activity moved the idle deadline on
            elif deadline is not None:
                due.append(record)
        return due

    def _fresh_at_first_deadline(self, now: float) -> list[_Root]:
        """Under the lock: the new roots whose first deadline has passed, the
        oldest first, in one pass (taking them one at a time from the front
        would skip the slots of every root ended before them, each time)."""
        reached = []
        for record in self._fresh.values():
            if record.started + self._first_limit > now:
                break
            reached.append(record)
        return reached

    def poll(self) -> int:
        """Flag (or force-end) every root whose deadline has passed; return how
        many. The worker thread calls this; tests with a fake clock may too
        (one poll at a time: when it returns, what was due is done)."""
        with self._polling:
            return self._poll_once()

    def _poll_once(self) -> int:
        now = self._clock()
        with self._lock:
            due = self._take_due(now)
        kept = [record for record in due if self._active_elsewhere(record, now)]
        if kept:
            with self._lock:
                for record in kept:
                    if not record.ended:
                        self._schedule(record)
            due = [record for record in due if record not in kept]
        children = self._index.count_children(due) if due else {}
        for record in due:
            if record.flagged_at is None:
                if self._flag(record, now, self._why(record, now), children.get(id(record), 0)):
                    with self._lock:
                        if not record.ended:
                            self._schedule(record)
            else:
                self._force_end(record, f"root span was never closed; ended {self._force_end_after:g}s after flagging")
        return len(due)

    def _active_elsewhere(self, record: _Root, now: float) -> bool:
        """Whether a root due for idleness that handed work off has seen activity within the idle limit in
        its remote parts (as their processes journaled it); if so, that activity becomes its own. Read on
        the watcher's thread, once per due root that handed work off."""
        if not record.handed_off or record.flagged_at is not None or self._journal is None or self._idle is None:
            return False
        if self._max_age is not None and record.started + self._max_age <= now:
            return False  # the age limit holds wherever the work runs
        latest_ns = self._journal.remote_activity(record.span.get_span_context().trace_id)
        if latest_ns is None:
            return False
        remote_at = now - max(0.0, (time.time_ns() - latest_ns) / 1e9)  # on this processor's clock
        if remote_at + self._idle <= now:
            return False
        outer: _Root | None = record
        while outer is not None:
            outer.last_activity = max(outer.last_activity, remote_at)
            outer = outer.outer
        return True

    def _why(self, record: _Root, now: float) -> str:
        if self._idle is None or (self._max_age is not None and record.started + self._max_age <= now):
            return f"open longer than max_age={self._max_age:g}s"
        return f"idle longer than idle_timeout={self._idle:g}s"

    # -- the worker -------------------------------------------------------------

    def _start_worker(self) -> None:
        """Under the lock."""
        if self._exit_hook is None:
            self._exit_hook = on_exit(self._end_all_at_exit)
        self._worker = threading.Thread(target=self._work, name="otel-crew-unclosed-roots", daemon=True)
        self._worker.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                delays = [deadline + COALESCE_SECONDS - self._clock() for deadline in self._earliest_deadlines()]
                journal_delay = self._journal_delay()
                if journal_delay is not None:
                    delays.append(journal_delay)
                if not delays or min(delays) > 0:
                    timeout = min(delays) if delays else None
                    self._wake_at = math.inf if timeout is None else self._clock() + timeout
                    self._journal_timed = journal_delay is not None
                    self._wakeup.wait(timeout)
                    continue
            if journal_delay is not None and journal_delay <= 0:
                self.write_journal()
            else:
                self.poll()

    def _earliest_deadlines(self) -> list[float]:
        """Under the lock: the earliest deadline in the heap and among new roots (those there are)."""
        earliest = [self._deadlines[0][0]] if self._deadlines else []
        if self._fresh and self._first_limit < math.inf:
            earliest.append(next(iter(self._fresh.values())).started + self._first_limit)
        return earliest

    def _journal_delay(self) -> float | None:
        """Under the lock: seconds until the journal's next write, None if none is needed."""
        if self._journal is None or not (self._roots or self._written_ended or self._journal.has_pending()):
            return None
        return self._next_journal_write - time.monotonic()

    # -- flag and end -------------------------------------------------------------

    def _claim(self, record: _Root, now: float, dropped: bool) -> bool:
        """Whether this caller flags ``record``: once, and never after its end
        (the watcher, shutdown and exit may race for the same root, and the
        user's end for it)."""
        with self._lock:
            if record.flagged_at is not None or (record.ended and not dropped) or not record.span.is_recording():
                return False
            record.flagged_at = now
            return True

    def _flag(self, record: _Root, now: float, reason: str, open_children: int | None, dropped: bool = False) -> bool:
        """Flag ``record`` unless someone did or it ended; whether this call did."""
        if not self._claim(record, now, dropped):
            return False
        span = record.span
        context = span.get_span_context()
        info = UnclosedRoot(
            name=span.name,
            trace_id=f"{context.trace_id:032x}",
            span_id=f"{context.span_id:016x}",
            age_seconds=now - record.started,
            idle_seconds=now - record.last_activity,
            open_children=open_children,
            reason=reason,
            span=span,
        )
        _LOG.warning(
            "otel-crew: root span %r (trace %s) is still open: %s (age %.1fs, idle %.1fs, %s open children)",
            info.name,
            info.trace_id,
            reason,
            info.age_seconds,
            info.idle_seconds,
            "?" if open_children is None else open_children,
        )
        event: dict[str, str | float | int] = {
            "otel_crew.reason": reason,
            "otel_crew.age_s": info.age_seconds,
            "otel_crew.idle_s": info.idle_seconds,
        }
        if open_children is not None:
            event["otel_crew.open_children"] = open_children
        span.add_event(FLAG_EVENT, event)
        self._flagged_counter.add(1)
        if self._on_unclosed is not None:
            try:
                self._on_unclosed(info)
            except Exception:
                _LOG.exception("otel-crew: the on_unclosed callback raised (contained)")
        return True

    def _force_end(self, record: _Root, description: str) -> None:
        span = record.span
        with self._lock:  # the watcher and shutdown may race for it: one ends it
            if record.force_ending or record.ended or not span.is_recording():
                return  # ours already, or the user ended it in the meantime
            record.force_ending = True
        span.set_attribute(UNCLOSED_ATTRIBUTE, True)
        span.set_status(Status(StatusCode.ERROR, description))
        span.end()  # on_end forgets the record

    def _end_all_open(self, why: str) -> int:
        """Flag (if not yet) and end every open root; return how many."""
        with self._lock:
            open_roots = list(self._roots.values())
        now = self._clock()
        children = self._index.count_children(open_roots) if open_roots else {}
        for record in open_roots:
            self._flag(record, now, why, children.get(id(record), 0))
            self._force_end(record, f"root span was never closed; ended by otel-crew at {why}")
        return len(open_roots)

    def _end_all_at_exit(self) -> None:
        if not self._shut_down:
            self._end_all_open("process exit")
            self.write_journal()

    # -- SpanProcessor lifecycle --------------------------------------------------

    def shutdown(self) -> None:
        if self._shut_down:
            return
        self._end_all_open("shutdown")
        self._shut_down = True
        with self._lock:
            self._stopping = True
            self._wakeup.notify_all()
            worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=5)
        self.write_journal()  # the roots just ended leave no entry
        if self._exit_hook is not None:
            atexit.unregister(self._exit_hook)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Writes the journal now; ends nothing: open roots stay open."""
        self.write_journal()
        return True

    def _observe_open_roots(self, options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(len(self._roots))

    # -- introspection (tests, doctor, benchmarks) ------------------------------

    @property
    def open_roots(self) -> int:
        """How many roots are watched now."""
        return len(self._roots)

    @property
    def index_size(self) -> int:
        """How many open spans are mapped to a root (bookkeeping size)."""
        return len(self._index)
