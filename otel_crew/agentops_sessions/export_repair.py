"""AgentOps' span export: repaired on OpenTelemetry 1.45+, and kept within a deadline.

AgentOps 0.4.21's ``AuthenticatedOTLPExporter`` subclasses OpenTelemetry's
OTLP/HTTP span exporter and reads its private ``_headers`` and ``_session``,
which OpenTelemetry 1.45.0 replaced by an internal client: every export then
fails and AgentOps receives nothing. CrewAI 1.15+ needs OpenTelemetry 1.45.1+.

One wrapper around that exporter's ``export`` does two things:

- *repair*: where the private attributes are there, AgentOps' own code runs;
  where they are gone, the spans go out through OpenTelemetry's public
  ``OTLPSpanExporter`` to the same endpoint, with AgentOps' current bearer
  token, as AgentOps does;
- *deadline*: each export waits at most the holders' timeout (OpenTelemetry's
  own retries stay inside it), and while a holder shuts down, at most until
  its deadline. The traces of sessions a shutdown gave up on fail at once
  afterwards, so AgentOps' own exit flush is not held up by a dead endpoint.

The wrapper is installed while a session processor holds it (``hold`` /
``release``, reference-counted, so repeated instrument/uninstrument never
stacks it) and taken off with the last holder, unless sessions were given up
on: then it stays, inert for every other trace, until the process ends.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import wrapt
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = [
    "BearerTokenOTLPExporter",
    "abandon_traces",
    "bound_metric_export",
    "export_deadline",
    "hold",
    "release",
    "repair_agentops_export",
    "take_session_result",
    "take_undelivered_sessions",
    "undelivered_detail",
    "undo_agentops_export_repair",
]

_LOG = logging.getLogger(__name__)

DEFAULT_EXPORT_TIMEOUT = 10.0
"""Seconds an export may take with no holder (OpenTelemetry's own default)."""
_SESSION_KIND = "session"
_REMEMBERED_FAILURES = 64
_REMEMBERED_RESULTS = 10_000  # results nobody takes (sessions otel-crew did not end) stop here


class BearerTokenOTLPExporter(SpanExporter):
    """OTLP/HTTP export with a bearer token that may change (AgentOps' JWT).

    Built only on OpenTelemetry's public exporter API: a fresh
    ``OTLPSpanExporter`` is made whenever the token or the timeout changes.
    """

    def __init__(self, endpoint: str, token: Callable[[], str | None], timeout: float = DEFAULT_EXPORT_TIMEOUT) -> None:
        self._endpoint = endpoint
        self._token = token
        self._timeout = timeout
        self._lock = threading.Lock()
        self._current: tuple[tuple[str | None, float], SpanExporter] | None = None

    def _exporter(self, timeout: float) -> SpanExporter:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        key = (self._token(), timeout)
        with self._lock:
            if self._current is None or self._current[0] != key:
                if self._current is not None:
                    self._current[1].shutdown()
                headers = {"Authorization": f"Bearer {key[0]}"} if key[0] else None
                self._current = (key, OTLPSpanExporter(endpoint=self._endpoint, headers=headers, timeout=timeout))
            return self._current[1]

    def export(self, spans: Sequence[ReadableSpan], timeout: float | None = None) -> SpanExportResult:
        try:
            return self._exporter(self._timeout if timeout is None else timeout).export(spans)
        except Exception:
            _LOG.debug("otel-crew: export to AgentOps failed", exc_info=True)
            return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        with self._lock:
            if self._current is not None:
                self._current[1].shutdown()
                self._current = None


class _ExportPolicy:
    """Process-wide: who holds the wrapper, the timeout and deadline of each
    export, the traces given up on, and the sessions AgentOps did not take."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holders: dict[int, float] = {}  # id(holder) -> its export timeout
        self.last_timeout = DEFAULT_EXPORT_TIMEOUT  # kept for the exports after the last holder left
        self.deadline: float | None = None  # monotonic; set while a holder shuts down
        self.abandoned: frozenset[int] = frozenset()  # trace ids; replaced whole, read without the lock
        self.undelivered: collections.deque[str] = collections.deque(maxlen=_REMEMBERED_FAILURES)
        # trace id -> whether the export carrying its session span succeeded; taken by the session's ender
        self.session_results: dict[int, bool] = {}
        self.last_failure = ""
        self.announced = False

    def timeout(self) -> float:
        timeout = min(self.holders.values(), default=self.last_timeout)
        deadline = self.deadline
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
        return timeout

    def given_up(self, spans: Sequence[ReadableSpan]) -> bool:
        abandoned = self.abandoned
        return bool(abandoned) and any(
            span.context is not None and span.context.trace_id in abandoned for span in spans
        )

    def note_result(self, spans: Sequence[ReadableSpan], delivered: bool, timeout: float) -> None:
        if not delivered:
            self.last_failure = f"no answer from AgentOps within {timeout:g}s, or an error"
        for span in spans:
            if (span.attributes or {}).get("agentops.span.kind") == _SESSION_KIND:
                if not delivered:
                    self.undelivered.append(span.name)
                if span.context is not None and len(self.session_results) < _REMEMBERED_RESULTS:
                    self.session_results[span.context.trace_id] = delivered


_POLICY = _ExportPolicy()
_replacements: weakref.WeakKeyDictionary[Any, BearerTokenOTLPExporter] = weakref.WeakKeyDictionary()


def _broken(exporter: Any) -> bool:
    """AgentOps' export reads these two; OpenTelemetry 1.45 removed them."""
    return not (hasattr(exporter, "_headers") and hasattr(exporter, "_session"))


def _replacement_for(exporter: Any) -> BearerTokenOTLPExporter:
    import agentops

    with _POLICY.lock:
        replacement = _replacements.get(exporter)
        if replacement is None:
            endpoint = agentops.get_client().config.exporter_endpoint
            replacement = BearerTokenOTLPExporter(endpoint, token=exporter._get_current_jwt)
            _replacements[exporter] = replacement
    return replacement


def _announce_repair() -> None:
    if not _POLICY.announced:
        _POLICY.announced = True
        _LOG.info(
            "otel-crew: AgentOps' exporter cannot send with this OpenTelemetry version (its private "
            "OTLP exporter fields are gone); otel-crew sends AgentOps' spans with OpenTelemetry's public "
            "OTLP/HTTP exporter instead"
        )


def _own_export_within(timeout: float, wrapped: Callable[..., SpanExportResult], exporter: Any, args: Any) -> Any:
    """AgentOps' own export (OpenTelemetry before 1.45), its per-export timeout
    (which bounds OpenTelemetry's retries too) set for this call."""
    if not hasattr(exporter, "_timeout"):
        return wrapped(*args)
    saved = exporter._timeout
    exporter._timeout = timeout
    try:
        return wrapped(*args)
    finally:
        exporter._timeout = saved


def _export(wrapped: Callable[..., SpanExportResult], exporter: Any, args: Any, kwargs: Any) -> SpanExportResult:
    spans: Sequence[ReadableSpan] = args[0] if args else kwargs["spans"]
    if _POLICY.given_up(spans):
        return SpanExportResult.FAILURE
    timeout = max(_POLICY.timeout(), 0.001)
    if _broken(exporter):
        _announce_repair()
        result = _replacement_for(exporter).export(spans, timeout)
    else:
        result = _own_export_within(timeout, wrapped, exporter, (spans,))
    _POLICY.note_result(spans, result is SpanExportResult.SUCCESS, timeout)
    return result


def _exporter_class() -> Any:
    try:
        from agentops.sdk.exporters import AuthenticatedOTLPExporter
    except ImportError:
        return None
    return AuthenticatedOTLPExporter


def repair_agentops_export() -> bool:
    """Install the wrapper (idempotent). False when AgentOps' exporter is not there."""
    exporter_class = _exporter_class()
    if exporter_class is None:
        return False
    if not isinstance(vars(exporter_class).get("export"), wrapt.FunctionWrapper):
        wrapt.wrap_function_wrapper(exporter_class, "export", _export)
    return True


def undo_agentops_export_repair() -> None:
    """Take the wrapper off, if it is still the outermost one (a wrapper someone
    put over ours stays, and ours stays inside it)."""
    exporter_class = _exporter_class()
    export = vars(exporter_class).get("export") if exporter_class is not None else None
    if isinstance(export, wrapt.FunctionWrapper) and export._self_wrapper is _export:
        exporter_class.export = export.__wrapped__


def hold(holder: object, timeout: float) -> bool:
    """``holder`` needs the wrapper, exports bounded by ``timeout`` seconds."""
    with _POLICY.lock:
        _POLICY.holders[id(holder)] = timeout
        _POLICY.last_timeout = timeout
    return repair_agentops_export()


def release(holder: object) -> None:
    """``holder`` is done; the last one out takes the wrapper off, unless
    traces were given up on (their exports must keep failing at once)."""
    with _POLICY.lock:
        _POLICY.holders.pop(id(holder), None)
        last = not _POLICY.holders and not _POLICY.abandoned
    if last:
        undo_agentops_export_repair()


def export_deadline(deadline: float | None) -> None:
    """Exports end by ``deadline`` (monotonic seconds), or without one (None)."""
    _POLICY.deadline = deadline


def abandon_traces(trace_ids: Iterable[int]) -> None:
    """Exports of spans in these traces fail at once from now on."""
    with _POLICY.lock:
        _POLICY.abandoned = _POLICY.abandoned | frozenset(trace_ids)


def take_undelivered_sessions() -> list[str]:
    """Names of session spans whose export failed since the last call."""
    with _POLICY.lock:
        names = list(_POLICY.undelivered)
        _POLICY.undelivered.clear()
    return names


def bound_metric_export(seconds: float) -> None:
    """AgentOps' own metric exports (to its hard-wired host, at its exit too) take
    at most ``seconds`` each from now on: the exporter's timeout, which bounds
    OpenTelemetry's retries (on the exporter before OpenTelemetry 1.45, on its
    client after)."""
    try:
        from agentops.sdk.core import tracer

        readers = tracer._meter_provider._metric_readers
    except Exception:  # not initialised, or laid out otherwise: nothing to bound
        return
    for reader in readers:
        exporter = getattr(reader, "_exporter", None)
        owners: tuple[Any, ...] = (exporter, getattr(exporter, "_client", None))
        for owner in owners:
            timeout = getattr(owner, "_timeout", None)
            if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
                owner._timeout = min(timeout, max(seconds, 0.001))


def take_session_result(trace_id: int) -> bool | None:
    """Whether the export of the session span of ``trace_id`` succeeded (None: no export of it seen)."""
    return _POLICY.session_results.pop(trace_id, None)


def undelivered_detail() -> str:
    """Why the last failed export failed, in words for a report."""
    return _POLICY.last_failure or "AgentOps' export never ran"


def installed() -> bool:
    """Whether the wrapper is on AgentOps' exporter (tests, doctor)."""
    exporter_class = _exporter_class()
    return exporter_class is not None and isinstance(vars(exporter_class).get("export"), wrapt.FunctionWrapper)


def repair_announced() -> bool:
    """Whether the repair had to step in (AgentOps' own export is broken here)."""
    return _POLICY.announced
