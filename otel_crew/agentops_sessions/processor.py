"""``AgentOpsSessionProcessor``: one AgentOps session per root, ended once, with the root's status.

For each root (see ``roots.py``) that runs CrewAI work, the first kickoff span
inside it opens one AgentOps session (0.4: a trace). When the root span ends,
the session is ended exactly once, through ``agentops.end_trace`` on that
session's own context (never AgentOps' module-global "current" session), with
the end state from ``end_states.py``.

Across processes (``roots/remote.py``): a root that hands work to another
process opens its session at that hand-off, even when no kickoff runs here;
the local part of a remote root (a worker's root under a marked remote
parent) opens none. The workers' spans share the caller's trace, and so the
session's.

While a root owns the session, CrewAI's own automatic end is suppressed
(``auto_end_guards.py``); a call from the user's own code always goes through.

What the session holds: otel-crew's own spans of the root, handed to
AgentOps re-parented under the session span (``forwarding.py``), while
AgentOps' own CrewAI instrumentation is kept off (``crewai_handover.py``).
Whether AgentOps took each session is reported (``session_reports()``, the
``otel_crew.agentops.sessions`` counter, one WARNING line per process).

Context hygiene: AgentOps attaches its session span to the current context
when it starts one. Here it is started inside a copied context, as a child of
the root (so AgentOps' own spans share the root's trace id), and its context
token is dropped, so the user's current span never changes.

Sessions are ended, and spans forwarded, on one background thread: ``end_trace`` flushes AgentOps'
exporter, which must not hold up the user's pipeline when AgentOps is slow or
unreachable. ``force_flush`` and ``shutdown`` wait for it, all pending ends
together at most ``flush_timeout``; at shutdown the exports to AgentOps share
that one deadline (``export_repair``), and what AgentOps did not take is said
in one log line, so a dead endpoint delays the exit by at most that bound.
"""

from __future__ import annotations

import collections
import contextvars
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanContext, StatusCode

from otel_crew.agentops_sessions import crewai_handover, export_repair, forwarding
from otel_crew.agentops_sessions.auto_end_guards import GUARDS, GuardHold
from otel_crew.agentops_sessions.end_states import (
    PAUSED_END_STATE,
    UNCLOSED_END_STATE,
    end_reason,
    end_state,
    validated_end_states,
    validated_paused_end_state,
)
from otel_crew.agentops_sessions.forwarding import SESSION_ANCHOR
from otel_crew.roots.definition import RootIndex, is_remote_part, span_key, starts_root
from otel_crew.roots.journal import note_session
from otel_crew.roots.lifecycle import on_fork_in_child
from otel_crew.roots.remote import MARKER_VALUE, anchor_value, on_handoff, remote_anchor
from otel_crew.semconv import GEN_AI_OPERATION_NAME, OPERATION_INVOKE_WORKFLOW, ROOT_ATTRIBUTE, SCHEMA_URL
from otel_crew.version import __version__

__all__ = ["AgentOpsSessionProcessor", "SessionReport"]

_LOG = logging.getLogger(__name__)

END_STATE_REASON_ATTRIBUTE = "agentops.session.end_state_reason"
_MAX_TAGS = 16
_NAMED_IN_LOG = 10
_REPORTS_KEPT = 1000
_UNDELIVERED_SAID = False  # process-wide: the undelivered line is a WARNING once
DEFAULT_FLUSH_TIMEOUT = 2.0
"""Seconds for all pending session ends together at flush and shutdown (and
for any one export to AgentOps): the most a dead AgentOps can delay the exit."""


def _validated_seconds(option: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value <= 0:
        raise ValueError(
            f"AgentOpsSessionProcessor({option}=...): expected a positive number of seconds, got {value!r}"
        )
    return float(value)


@dataclass(eq=False, slots=True)
class _Session:
    """The session of one root: opened at its first kickoff, ended with it.
    A bare kickoff's root with ``auto_end_session=False`` opens none (the
    user's session is theirs) but still counts as a root, so CrewAI's
    automatic end stays suppressed inside it."""

    root: Span
    key: int  # the root's span_key
    opens_session: bool
    trace_context: Any = None  # AgentOps' TraceContext, once opened
    # Each side writes its flag, then reads the other's (see on_end): an opener and the root's end never
    # both miss each other, so a root without a session ends without the lock.
    opening: bool = False
    root_ended: bool = False
    # Open spans below the root started since its session opened -> the span id AgentOps' copy hangs
    # from: its own for a span AgentOps gets, else its nearest such ancestor's (forwarding.SESSION_ANCHOR:
    # the session span, also for a parent started before the session opened).
    anchor_of: dict[int, int] = field(default_factory=dict)
    # The local part of a remote root (roots/remote.py) opens no session: its spans are forwarded under
    # the caller's session span, which the marker names.
    remote_session: SpanContext | None = None


def _is_kickoff(span: ReadableSpan) -> bool:
    # The name first (kickoff spans are "invoke_workflow {crew}"): it is a plain
    # read, where a failed attribute look-up would cost every other span.
    if not span.name.startswith(OPERATION_INVOKE_WORKFLOW):
        return False
    attributes = span.attributes
    return attributes is not None and attributes.get(GEN_AI_OPERATION_NAME) == OPERATION_INVOKE_WORKFLOW


def _default_tags(root: ReadableSpan) -> list[str]:
    """The root's name, then ``key:value`` of its string-ish attributes."""
    tags = ["otel-crew", root.name]
    for key, value in (root.attributes or {}).items():
        if key != ROOT_ATTRIBUTE and isinstance(value, (str, int, float, bool)) and len(tags) < _MAX_TAGS:
            tags.append(f"{key}:{value}")
    return tags


class _WarnOnce:
    """One clear log line per kind of trouble, not one per span."""

    def __init__(self) -> None:
        self._said: set[str] = set()

    def __call__(self, kind: str, message: str, *args: object, level: int = logging.WARNING) -> None:
        if kind not in self._said:
            self._said.add(kind)
            _LOG.log(level, "otel-crew: " + message, *args)


@dataclass(frozen=True, slots=True)
class _SessionEnd:
    """One session to end: AgentOps' context, the end state and reason, and
    the names the undelivered line says."""

    trace_context: Any
    state: str
    reason: str
    name: str
    trace_id: int
    root_span_id: int


@dataclass(frozen=True, slots=True)
class _Forward:
    """One span of a session's root for AgentOps, and the span id its copy hangs from."""

    span: ReadableSpan
    anchor: int
    session: _Session


@dataclass(frozen=True, slots=True)
class SessionReport:
    """What became of one session: its root, its end state, and whether AgentOps took it."""

    root_name: str
    trace_id: int
    root_span_id: int
    end_state: str
    delivered: bool
    detail: str  # why not delivered; '' when delivered


_Work = _SessionEnd | _Forward
_WAKE_AT = 256
"""Forwarded spans wait for the next session end (or flush) unless this many pile up."""


class _SessionEnder:
    """One daemon thread that forwards spans and ends sessions, in order (a
    session's spans go to AgentOps before its end flushes them); started on
    first use. Once stopped it takes no more work and drops what it had not begun."""

    def __init__(self, end: Callable[[_Work], None]) -> None:
        self._end = end
        self._pending: collections.deque[_Work] = collections.deque()
        self._current: _Work | None = None
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def submit(self, item: _Work) -> bool:
        """Queue ``item`` and wake the thread; False (refused) once stopped."""
        with self._condition:
            if self._stopped:
                return False
            self._pending.append(item)
            self._wake()
        return True

    def _wake(self) -> None:
        """Under the condition: start the thread on first use, and wake it."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="otel-crew-agentops-sessions", daemon=True)
            self._thread.start()
        self._condition.notify_all()

    def forward(self, item: _Forward) -> None:
        """The hot path: a deque append (thread-safe); the thread is woken only
        when many wait, else by the next session end or flush."""
        pending = self._pending
        pending.append(item)
        if len(pending) >= _WAKE_AT:
            self.submit(pending.pop())

    def _work(self) -> None:
        while True:
            with self._condition:
                while not self._pending and not self._stopped:
                    self._condition.wait()
                if self._stopped:
                    return
                self._current = item = self._pending.popleft()
            try:
                self._end(item)
            finally:
                with self._condition:
                    self._current = None
                    self._condition.notify_all()

    def _idle(self) -> bool:
        return not self._pending and self._current is None

    def wait(self, deadline: float) -> bool:
        """Until every submitted item is done, or the ``deadline`` (monotonic)."""
        with self._condition:
            if self._pending and not self._stopped:
                self._wake()  # forwarded spans may wait unannounced
            return self._condition.wait_for(self._idle, max(0.0, deadline - time.monotonic()))

    def stop(self, deadline: float) -> list[_SessionEnd]:
        """Wait until the ``deadline``, then take no more work; returns the session
        ends not done (dropped, or still in AgentOps' hands)."""
        self.wait(deadline)
        with self._condition:
            self._stopped = True
            undone = ([] if self._current is None else [self._current]) + list(self._pending)
            self._pending.clear()
            self._condition.notify_all()
        return [item for item in undone if isinstance(item, _SessionEnd)]


class AgentOpsSessionProcessor(SpanProcessor):
    """Opens and ends AgentOps sessions from root spans; usable on its own.

    Constructing one changes nothing outside it: CrewAI's auto-end guards and
    the export repair go on at its first span and come off at ``shutdown()``.
    ``uninitialised_log_level``: how loudly it says AgentOps was never
    initialised (a warning; debug when ``instrument(agentops="auto")`` built it).

    Args:
        auto_end_session: a bare kickoff (nothing around it) is its own root
            and gets its own session, ended with it (True, AgentOps' and
            CrewAI's behaviour for single crews); with False a bare kickoff
            opens no session and the user's own session is left to the user.
        end_states: overrides of the outcome to end-state mapping, keyed by
            StatusCode (default OK: returned "Success", ERROR: raised "Fail",
            UNSET: neither "Indeterminate").
        end_reason: root span -> reason text (default: its status
            description, else the recorded exception's type).
        session_tags: root span -> AgentOps tags (default: "otel-crew", the
            root's name, and ``key:value`` of its attributes).
        meter_provider: where ``otel_crew.agentops.auto_end_suppressed`` goes.
        flush_timeout: seconds, for all pending session ends together, that
            ``force_flush`` and ``shutdown`` wait for AgentOps to take them; also
            the most any one export to AgentOps may take. What is not delivered
            by then is said in one log line and never holds the exit up.
        paused_end_state: the end state of a flow run that paused for human
            feedback (default "Indeterminate"); its resumed run is a new root
            with a session of its own.
    """

    uninitialised_log_level = logging.WARNING

    def __init__(
        self,
        auto_end_session: bool = True,
        end_states: Mapping[StatusCode, str] | None = None,
        end_reason: Callable[[ReadableSpan], str] = end_reason,
        session_tags: Callable[[ReadableSpan], list[str]] = _default_tags,
        meter_provider: MeterProvider | None = None,
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
        paused_end_state: str = PAUSED_END_STATE,
    ) -> None:
        if not isinstance(auto_end_session, bool):
            raise TypeError(f"AgentOpsSessionProcessor(auto_end_session=...): expected bool, got {auto_end_session!r}")
        for option, value in (("end_reason", end_reason), ("session_tags", session_tags)):
            if not callable(value):
                raise TypeError(f"AgentOpsSessionProcessor({option}=...): expected a callable, got {value!r}")
        self._flush_timeout = _validated_seconds("flush_timeout", flush_timeout)
        self._states = validated_end_states(end_states)
        self._paused_state = validated_paused_end_state(paused_end_state)
        self._auto_end = auto_end_session
        self._reason_of = end_reason
        self._tags_of = session_tags
        self._warn = _WarnOnce()
        meter = metrics.get_meter("otel_crew", __version__, meter_provider=meter_provider, schema_url=SCHEMA_URL)
        self._suppressed = meter.create_counter(
            "otel_crew.agentops.auto_end_suppressed",
            unit="{call}",
            description="CrewAI's own AgentOps session calls suppressed inside a root",
        )
        self._sessions_counter = meter.create_counter(
            "otel_crew.agentops.sessions",
            unit="{session}",
            description="AgentOps sessions ended, by end state and whether AgentOps took them (delivered)",
        )
        self._reports: collections.deque[SessionReport] = collections.deque(maxlen=_REPORTS_KEPT)
        self._agentops = self._import_agentops()
        self._guard_hold: GuardHold | None = None
        # The hot path's one check: None until the first span, True while
        # installed, False once shut down (or without AgentOps): inert for good.
        self._active: bool | None = None
        self._shut_down = False
        self._reset_state()
        on_fork_in_child(self._reset_state)
        on_handoff(self._handed_off)

    def _import_agentops(self) -> Any:
        try:
            import agentops
        except ImportError:
            self._warn("missing", "AgentOps is not installed; AgentOpsSessionProcessor records no sessions")
            return None
        return agentops

    def _reset_state(self) -> None:
        """Fresh state: at construction, and in a forked child."""
        self._index: RootIndex[_Session] = RootIndex()
        self._open: dict[int, _Session] = {}
        # Opening, claiming (by a root's end or by shutdown) and closing take
        # this lock: rare events, once per root, never per span.
        self._lock = threading.Lock()
        self._closing = False
        self._ender = _SessionEnder(self._work)

    def activate(self) -> bool:
        """Put the guards, the export repair and the CrewAI hand-over on (at the
        first span, or earlier: ``instrument()`` calls it before it wraps CrewAI,
        so that AgentOps' own CrewAI wrappers come off first). False without
        AgentOps or once shut down."""
        with self._lock:
            if self._shut_down or self._agentops is None:
                self._active = False
                return False
            if self._active is None:
                self._guard_hold = GUARDS.hold(self._agentops, self._inside_root, self._suppressed_call)
                export_repair.hold(self, self._flush_timeout)
                crewai_handover.hold(self)
                self._active = True
        return True

    # -- the hot path -----------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        active = self._active
        if active is not True and (active is False or not self.activate()):
            return
        parent = span.parent
        if starts_root(parent):
            bare_kickoff = _is_kickoff(span)
            key = span_key(span)
            opens_session = (self._auto_end or not bare_kickoff) and not is_remote_part(parent)
            root_session = _Session(
                root=span, key=key, opens_session=opens_session, remote_session=remote_anchor(parent)
            )
            self._index[key] = root_session
            self._open[key] = root_session
            if bare_kickoff:
                self._open_session(root_session)
            return
        session = self._index.add_child(span, parent)  # type: ignore[arg-type]  # a child's parent is not None
        if session is None or not (session.opens_session or session.remote_session is not None):
            return
        if session.trace_context is None and session.remote_session is None:
            if not _is_kickoff(span):
                return  # no session (yet): nothing to forward, no cost for roots without AgentOps
            self._open_session(session)
            if session.trace_context is None:
                return
        # AgentOps gets this span (a copy) once it ends: its anchor is itself; else its nearest forwarded ancestor's.
        anchors, key = session.anchor_of, span.context.span_id
        anchors[key] = key if forwarding.forwarded_at_start(span) else anchors.get(parent.span_id, SESSION_ANCHOR)  # type: ignore[union-attr]

    def on_end(self, span: ReadableSpan) -> None:
        key = span.context.span_id  # span_key(span), one call fewer
        session = self._index.pop(key, None)
        if session is None:
            return
        if session.key != key:
            anchors = session.anchor_of
            forwarding_here = session.trace_context is not None or session.remote_session is not None
            if anchors.pop(key, None) == key and forwarding_here:
                parent = span.parent.span_id  # type: ignore[union-attr]  # below a root: it has one
                self._ender.forward(_Forward(span, anchors.get(parent, SESSION_ANCHOR), session))
            return
        session.root_ended = True
        if session.remote_session is not None:
            self._ender.wait(time.monotonic())  # no session end here to wake the ender: its spans go now
        if not session.opening:
            # Most roots (a web request, say) have no session: no lock. An opener that
            # comes now sees root_ended and opens none.
            self._open.pop(key, None)
            return
        # Read outside the lock (it may call the user's end_reason), and only for a root with a session.
        outcome = None if session.trace_context is None else self._outcome_of(span)
        with self._lock:  # an opener may still be at work: it finishes first
            # Whoever pops the session ends it: this root's end or shutdown, once.
            if self._open.pop(key, None) is None or session.trace_context is None:
                return
            self._submit(session, *(outcome or self._outcome_of(span)))  # opened meanwhile: read it now

    def _handed_off(self, context: SpanContext) -> str | None:
        """A span of a root here hands work to another process: the root's session opens now, and the
        marker names its span, under which the other process forwards its spans."""
        session = self._index.get(context.span_id)
        if session is None:
            return None
        if session.trace_context is None:
            self._open_session(session)
        opened = session.trace_context
        return MARKER_VALUE if opened is None else anchor_value(opened.span.get_span_context().span_id)

    # -- opening and ending -------------------------------------------------------

    def _open_session(self, session: _Session) -> None:
        if not session.opens_session:
            return
        with self._lock:
            session.opening = True  # before reading root_ended: see on_end
            if (
                session.trace_context is not None
                or self._closing
                or session.root_ended
                or session.key not in self._open
            ):
                return
            try:
                session.trace_context = self._start_trace(session.root)
                if session.trace_context is not None:  # so that a later process can end it if this one dies
                    note_session(session.root.get_span_context(), session.trace_context.span)
            except Exception as error:
                self._warn(
                    "open",
                    "could not open an AgentOps session (%s: %s); spans are unaffected",
                    type(error).__name__,
                    error,
                )

    def _start_trace(self, root: Span) -> Any:
        agentops = self._agentops
        if not agentops.get_client().initialized:
            self._warn(
                "uninitialised",
                "AgentOps is not initialised (call agentops.init(auto_start_session=False)); no sessions are recorded",
                level=self.uninitialised_log_level,
            )
            return None
        tags = self._tags_of(root)
        # AgentOps attaches its session span to the current context: let it,
        # in a copy whose current span is the root, and drop its token.
        started = contextvars.copy_context().run(_start_trace_under, agentops, root, tags)
        if started is not None:
            started.token = None
        return started

    def _outcome_of(self, root: ReadableSpan) -> tuple[str, str]:
        try:
            return end_state(root, self._states, self._paused_state), self._reason_of(root)
        except Exception:
            _LOG.debug("otel-crew: end state of %r could not be read", root.name, exc_info=True)
            return UNCLOSED_END_STATE, ""

    def _submit(self, session: _Session, state: str, reason: str) -> None:
        """Under the lock."""
        context = session.root.get_span_context()
        self._ender.submit(
            _SessionEnd(session.trace_context, state, reason, session.root.name, context.trace_id, context.span_id)
        )

    def _work(self, item: _Work) -> None:
        if isinstance(item, _Forward):
            self._forward(item)
        else:
            self._end_session(item)

    def _forward(self, item: _Forward) -> None:
        try:
            session = item.session
            session_span = session.remote_session or session.trace_context.span.get_span_context()
            span = item.span
            parent = (
                session_span
                if item.anchor == SESSION_ANCHOR
                else SpanContext(span.context.trace_id, item.anchor, False, span.context.trace_flags)
            )
            forwarding.deliver([forwarding.agentops_copy(span, parent, forwarding.agentops_resource())])
        except Exception:
            _LOG.debug("otel-crew: a span could not be handed to AgentOps", exc_info=True)

    def _end_session(self, item: _SessionEnd) -> None:
        try:
            if item.reason:
                item.trace_context.span.set_attribute(END_STATE_REASON_ATTRIBUTE, item.reason)
            self._agentops.end_trace(item.trace_context, end_state=item.state)
        except Exception as error:
            self._warn("end", "AgentOps raised while ending a session (%s: %s); ignored", type(error).__name__, error)
            self._report(item, False, f"AgentOps raised {type(error).__name__}")
            return
        delivered = export_repair.take_session_result(item.trace_id)
        self._report(item, delivered is True, "" if delivered else export_repair.undelivered_detail())

    def _report(self, item: _SessionEnd, delivered: bool, detail: str) -> None:
        self._reports.append(SessionReport(item.name, item.trace_id, item.root_span_id, item.state, delivered, detail))
        self._sessions_counter.add(1, {"end_state": item.state, "delivered": delivered})

    # -- CrewAI's automatic end -----------------------------------------------------

    def _inside_root(self) -> bool:
        span = trace.get_current_span()
        return span.get_span_context().span_id in self._index

    def _suppressed_call(self, what: str) -> None:
        self._suppressed.add(1, {"call": what})
        _LOG.debug("otel-crew: suppressed CrewAI's %s inside a root; the root's end decides", what)

    # -- SpanProcessor lifecycle ------------------------------------------------------

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Waits (at most ``flush_timeout``) for the sessions of roots that
        ended; ends nothing: open roots keep their sessions."""
        return self._ender.wait(time.monotonic() + min(timeout_millis / 1000, self._flush_timeout))

    def shutdown(self) -> None:
        """Ends the sessions of roots still open ("Indeterminate"), waits for
        all session ends together at most ``flush_timeout``, says in one line
        what AgentOps did not take, and takes the guards and the export repair
        off AgentOps."""
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = self._closing = True
            self._active = False
            deadline = time.monotonic() + self._flush_timeout
            export_repair.export_deadline(deadline)
            for session in list(self._open.values()):
                if self._open.pop(session.key, None) is not None and session.trace_context is not None:
                    self._submit(session, UNCLOSED_END_STATE, "open at shutdown")
            self._index.clear()
        try:
            undone = self._ender.stop(deadline)
            if undone:
                export_repair.abandon_traces(item.trace_id for item in undone)
            for item in undone:
                self._report(item, False, f"AgentOps did not take it within flush_timeout={self._flush_timeout:g}s")
            # AgentOps' own metric export at its exit (to a hard-wired host, which an offline or
            # firewalled machine cannot reach) gets what is left of this shutdown's time, not
            # OpenTelemetry's 10 s of retries: the sessions opened here are what it reports on.
            export_repair.bound_metric_export(deadline - time.monotonic())
            self._say_undelivered([item.name for item in undone] + export_repair.take_undelivered_sessions())
        finally:
            export_repair.export_deadline(None)
            self._release_process_wide()

    def _say_undelivered(self, names: list[str]) -> None:
        """One WARNING line per process (a later bridge's says it at DEBUG): the demo, doctor and
        ``session_reports()`` tell the rest."""
        global _UNDELIVERED_SAID
        if names:
            shown = ", ".join(repr(name.removesuffix(".session")) for name in names[:_NAMED_IN_LOG])
            more = f" and {len(names) - _NAMED_IN_LOG} more" if len(names) > _NAMED_IN_LOG else ""
            level, _UNDELIVERED_SAID = (logging.DEBUG if _UNDELIVERED_SAID else logging.WARNING), True
            _LOG.log(
                level,
                "otel-crew: AgentOps did not take %d session(s) within flush_timeout=%gs (unreachable or slow?); "
                "not delivered: %s%s",
                len(names),
                self._flush_timeout,
                shown,
                more,
            )

    def _release_process_wide(self) -> None:
        if self._guard_hold is not None:
            GUARDS.release(self._guard_hold)
            self._guard_hold = None
            export_repair.release(self)
            crewai_handover.release(self)

    # -- introspection (tests, doctor) ----------------------------------------------------

    def session_reports(self) -> list[SessionReport]:
        """What became of the sessions ended so far (the last 1,000), oldest first."""
        return list(self._reports)

    @property
    def open_roots(self) -> int:
        return len(self._open)

    @property
    def index_size(self) -> int:
        return len(self._index)


def _start_trace_under(agentops: Any, root: Span, tags: list[str]) -> Any:
    otel_context.attach(trace.set_span_in_context(root, Context()))
    return agentops.start_trace(trace_name=root.name, tags=tags)
