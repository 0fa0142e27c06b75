"""``AgentOpsSessionProcessor``: one AgentOps session per root, ended once, with the root's status.

For each root (see ``roots.py``) that runs CrewAI work, the first kickoff span
inside it opens one AgentOps session (0.4: a trace). When the root span ends,
the session is ended exactly once, through ``agentops.end_trace`` on that
session's own context (never AgentOps' module-global "current" session), with
the end state from ``session_states.py``.

While a root owns the session, CrewAI's own automatic end is suppressed
(``auto_end_guards.py``); a call from the user's own code always goes through.

Context hygiene: AgentOps attaches its session span to the current context
when it starts one. Here it is started inside a copied context, as a child of
the root (so AgentOps' own spans share the root's trace id), and its context
token is dropped, so the user's current span never changes.

Sessions are ended on one background thread: ``end_trace`` flushes AgentOps'
exporter, which must not hold up the user's pipeline when AgentOps is slow or
unreachable. ``force_flush`` and ``shutdown`` wait for it.
"""

from __future__ import annotations

import collections
import contextvars
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

from otel_crew.agentops_sessions.auto_end_guards import AutoEndGuards
from otel_crew.agentops_sessions.end_states import (
    PAUSED_END_STATE,
    UNCLOSED_END_STATE,
    end_reason,
    end_state,
    validated_end_states,
    validated_paused_end_state,
)
from otel_crew.agentops_sessions.export_repair import repair_agentops_export
from otel_crew.roots.definition import RootIndex, span_key, starts_root
from otel_crew.roots.journal import note_session
from otel_crew.roots.lifecycle import on_fork_in_child
from otel_crew.semconv import GEN_AI_OPERATION_NAME, OPERATION_INVOKE_WORKFLOW, ROOT_ATTRIBUTE, SCHEMA_URL
from otel_crew.version import __version__

__all__ = ["AgentOpsSessionProcessor"]

_LOG = logging.getLogger(__name__)

END_STATE_REASON_ATTRIBUTE = "agentops.session.end_state_reason"
_MAX_TAGS = 16


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


class _SessionEnder:
    """One daemon thread that ends sessions in order; started on first use."""

    def __init__(self, end: Callable[[Any, str, str], None]) -> None:
        self._end = end
        self._reset()

    def _reset(self) -> None:
        self._pending: collections.deque[tuple[Any, str, str]] = collections.deque()
        self._busy = 0
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def submit(self, trace_context: Any, state: str, reason: str) -> None:
        with self._condition:
            self._pending.append((trace_context, state, reason))
            self._busy += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="otel-crew-agentops-sessions", daemon=True)
                self._thread.start()
            self._condition.notify_all()

    def _work(self) -> None:
        while True:
            with self._condition:
                while not self._pending and not self._stopping:
                    self._condition.wait()
                if not self._pending:
                    return
                item = self._pending.popleft()
            try:
                self._end(*item)
            finally:
                with self._condition:
                    self._busy -= 1
                    self._condition.notify_all()

    def wait(self, timeout: float) -> bool:
        """Until every submitted session is ended, or ``timeout`` seconds."""
        with self._condition:
            return self._condition.wait_for(lambda: self._busy == 0, timeout)

    def stop(self, timeout: float) -> bool:
        drained = self.wait(timeout)
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        return drained


class AgentOpsSessionProcessor(SpanProcessor):
    """Opens and ends AgentOps sessions from root spans; usable on its own.

    ``uninitialised_log_level``: how loudly it says AgentOps was never
    initialised (a warning; debug when ``instrument(agentops="auto")`` built it).

    Args:
        auto_end_session: a bare kickoff (nothing around it) is its own root
            and gets its own session, ended with it (True, AgentOps' and
            CrewAI's behaviour for single crews); with False a bare kickoff
            opens no session and the user's own session is left to the user.
        end_states: overrides of the StatusCode to end-state mapping
            (default OK "Success", ERROR "Fail", UNSET "Indeterminate").
        end_reason: root span -> reason text (default: its status
            description, else the recorded exception's type).
        session_tags: root span -> AgentOps tags (default: "otel-crew", the
            root's name, and ``key:value`` of its attributes).
        meter_provider: where ``otel_crew.agentops.auto_end_suppressed`` goes.
        flush_timeout: seconds ``force_flush``/``shutdown`` wait for sessions
            to be ended and sent.
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
        flush_timeout: float = 10.0,
        paused_end_state: str = PAUSED_END_STATE,
    ) -> None:
        if not isinstance(auto_end_session, bool):
            raise TypeError(f"AgentOpsSessionProcessor(auto_end_session=...): expected bool, got {auto_end_session!r}")
        for option, value in (("end_reason", end_reason), ("session_tags", session_tags)):
            if not callable(value):
                raise TypeError(f"AgentOpsSessionProcessor({option}=...): expected a callable, got {value!r}")
        self._states = validated_end_states(end_states)
        self._paused_state = validated_paused_end_state(paused_end_state)
        self._auto_end = auto_end_session
        self._reason_of = end_reason
        self._tags_of = session_tags
        self._flush_timeout = flush_timeout
        self._warn = _WarnOnce()
        meter = metrics.get_meter("otel_crew", __version__, meter_provider=meter_provider, schema_url=SCHEMA_URL)
        self._suppressed = meter.create_counter(
            "otel_crew.agentops.auto_end_suppressed",
            unit="{call}",
            description="CrewAI's own AgentOps session calls suppressed inside a root",
        )
        self._agentops = self._import_agentops()
        self._reset_state()
        self._guards = AutoEndGuards(self._agentops, self._inside_root, self._suppressed_call)
        if self._agentops is not None:
            repair_agentops_export()
            self._guards.install()
        on_fork_in_child(self._reset_state)

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
        self._opening = threading.Lock()  # sessions open once per root; rare, so one lock
        self._ender = _SessionEnder(self._end_session)

    # -- the hot path -----------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self._agentops is None:
            return
        parent = span.parent
        if starts_root(parent):
            bare_kickoff = _is_kickoff(span)
            key = span_key(span)
            root_session = _Session(root=span, key=key, opens_session=self._auto_end or not bare_kickoff)
            self._index.add_root(span, root_session)
            self._open[key] = root_session
            if bare_kickoff:
                self._open_session(root_session)
            return
        session = self._index.add_child(span, parent)
        if session is not None and session.trace_context is None and _is_kickoff(span):
            self._open_session(session)

    def on_end(self, span: ReadableSpan) -> None:
        key = span_key(span)
        session = self._index.remove(key)
        if session is None or session.key != key:
            return
        self._open.pop(key, None)
        if session.trace_context is not None:
            self._submit_end(session, span)

    # -- opening and ending -------------------------------------------------------

    def _open_session(self, session: _Session) -> None:
        if not session.opens_session:
            return
        with self._opening:
            if session.trace_context is not None:
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

    def _submit_end(self, session: _Session, root: ReadableSpan) -> None:
        try:
            state = end_state(root, self._states, self._paused_state)
            reason = self._reason_of(root)
        except Exception:
            _LOG.debug("otel-crew: end state of %r could not be read", root.name, exc_info=True)
            state, reason = UNCLOSED_END_STATE, ""
        self._ender.submit(session.trace_context, state, reason)

    def _end_session(self, trace_context: Any, state: str, reason: str) -> None:
        try:
            if reason:
                trace_context.span.set_attribute(END_STATE_REASON_ATTRIBUTE, reason)
            self._agentops.end_trace(trace_context, end_state=state)
        except Exception as error:
            self._warn("end", "AgentOps raised while ending a session (%s: %s); ignored", type(error).__name__, error)

    # -- CrewAI's automatic end -----------------------------------------------------

    def _inside_root(self) -> bool:
        span = trace.get_current_span()
        return self._index.get(span.get_span_context()) is not None

    def _suppressed_call(self, what: str) -> None:
        self._suppressed.add(1, {"call": what})
        _LOG.debug("otel-crew: suppressed CrewAI's %s inside a root; the root's end decides", what)

    # -- SpanProcessor lifecycle ------------------------------------------------------

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._ender.wait(min(timeout_millis / 1000, self._flush_timeout))

    def shutdown(self) -> None:
        """Ends the sessions of roots still open ("Indeterminate"), waits for
        every session to be sent, and takes the guards off AgentOps."""
        for session in list(self._open.values()):
            if session.trace_context is not None:
                self._ender.submit(session.trace_context, UNCLOSED_END_STATE, "open at shutdown")
        self._open.clear()
        self._index.clear()
        if not self._ender.stop(self._flush_timeout):
            self._warn(
                "flush",
                "AgentOps did not take the ended sessions within %.0fs (unreachable?); stopped waiting",
                self._flush_timeout,
            )
        self._guards.remove()

    # -- introspection (tests, doctor) ----------------------------------------------------

    @property
    def open_roots(self) -> int:
        return len(self._open)

    @property
    def index_size(self) -> int:
        return len(self._index)


def _start_trace_under(agentops: Any, root: Span, tags: list[str]) -> Any:
    otel_context.attach(trace.set_span_in_context(root, Context()))
    return agentops.start_trace(trace_name=root.name, tags=tags)
