"""One line per export outage, for the exporters otel-crew sets up.

OpenTelemetry's OTLP exporters log each retry and each failed export (two or
three lines a batch, and the gRPC one retries quietly for up to its timeout).
For an exporter otel-crew watches (the one ``configure()`` builds, the one the
zero-code start's distro built), what those exporters log from inside *its*
export is dropped and replaced by otel-crew's one line when the outage starts
(which endpoint, how long each batch may retry, what to do) and one when it
ends. Everything else the exporters log (for the user's own exporters, or
outside such an export) passes untouched.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["OutageReporting", "watch_exporter"]

_LOG = logging.getLogger(__name__)
# The loggers of OpenTelemetry's OTLP span exporters (a filter sees its own logger's records only).
EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
)


class _Outage:
    """One watched exporter's state: failing or not, said once per change."""

    def __init__(self, target: str, timeout_s: float) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self.failing = False
        self.ever_failed = False
        self._lock = threading.Lock()

    def started(self) -> None:
        with self._lock:
            if self.failing:
                return
            self.failing = self.ever_failed = True
        _LOG.warning(
            "otel-crew: cannot export spans to %s (each batch retries for up to %g s, then is dropped): "
            "start an OTLP receiver there or point OTEL_EXPORTER_OTLP_ENDPOINT at one",
            self.target,
            self.timeout_s,
        )

    def ended(self) -> None:
        with self._lock:
            if not self.failing:
                return
            self.failing = False
        _LOG.warning("otel-crew: exporting spans to %s again", self.target)


class _Inside(threading.local):
    outage: _Outage | None = None


_INSIDE = _Inside()


class _ExporterChatter(logging.Filter):
    """Drops what an OTLP exporter logs inside a watched export; its first such line starts the outage."""

    def filter(self, record: logging.LogRecord) -> bool:
        outage = _INSIDE.outage
        if outage is None:
            return True
        if record.levelno >= logging.WARNING:
            outage.started()
        return False


_CHATTER = _ExporterChatter()


def _filter_exporter_loggers() -> None:
    for name in EXPORTER_LOGGERS:
        logger = logging.getLogger(name)
        if _CHATTER not in logger.filters:
            # First, so that a record it drops never reaches the exporter's own duplicate filter, which would then
            # drop the user's next line of the same kind.
            logger.filters.insert(0, _CHATTER)


def _watched_export(outage: _Outage, export: Callable[[Sequence[ReadableSpan]], SpanExportResult]) -> Any:
    def watched(spans: Sequence[ReadableSpan]) -> SpanExportResult:
        _INSIDE.outage = outage
        try:
            result = export(spans)
        except Exception:  # an exporter must not raise, but one that does stays contained
            _LOG.debug("otel-crew: exporter raised", exc_info=True)
            result = SpanExportResult.FAILURE
        finally:
            _INSIDE.outage = None
        if result is SpanExportResult.SUCCESS:
            outage.ended()
        else:
            outage.started()
        return result

    return watched


class OutageReporting(SpanExporter):
    """Wraps an exporter otel-crew built: one line when exports start failing, one when they work again."""

    def __init__(self, exporter: SpanExporter, target: str, timeout_s: float) -> None:
        _filter_exporter_loggers()
        self._exporter = exporter
        self._outage = _Outage(target, timeout_s)
        self._export = _watched_export(self._outage, exporter.export)

    @property
    def ever_failed(self) -> bool:
        return self._outage.ever_failed

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._export(spans)  # type: ignore[no-any-return]

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.force_flush(timeout_millis)


def watch_exporter(exporter: SpanExporter, target: str, timeout_s: float) -> None:
    """Watch an exporter someone else built (the zero-code start's, for the life of the process), in place."""
    _filter_exporter_loggers()
    exporter.export = _watched_export(_Outage(target, timeout_s), exporter.export)  # type: ignore[method-assign]
