"""Making AgentOps' span export work again on OpenTelemetry 1.45+.

AgentOps 0.4.21's ``AuthenticatedOTLPExporter`` subclasses OpenTelemetry's
OTLP/HTTP span exporter and reads its private ``_headers`` and ``_session``,
which OpenTelemetry 1.45.0 replaced by an internal client: every export then
fails and AgentOps receives nothing. CrewAI 1.15+ needs OpenTelemetry 1.45.1+.

``repair_agentops_export()`` wraps that exporter's ``export``: where the
private attributes are there, AgentOps' own code runs untouched; where they
are gone, the spans go out through OpenTelemetry's public ``OTLPSpanExporter``
to the same endpoint, with AgentOps' current bearer token, as AgentOps does.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["BearerTokenOTLPExporter", "repair_agentops_export", "undo_agentops_export_repair"]

_LOG = logging.getLogger(__name__)


class BearerTokenOTLPExporter(SpanExporter):
    """OTLP/HTTP export with a bearer token that may change (AgentOps' JWT).

    Built only on OpenTelemetry's public exporter API: a fresh
    ``OTLPSpanExporter`` is made whenever the token changes.
    """

    def __init__(self, endpoint: str, token: Callable[[], str | None], timeout: float = 10.0) -> None:
        self._endpoint = endpoint
        self._token = token
        self._timeout = timeout
        self._lock = threading.Lock()
        self._current: tuple[str | None, SpanExporter] | None = None

    def _exporter(self) -> SpanExporter:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        token = self._token()
        with self._lock:
            if self._current is None or self._current[0] != token:
                if self._current is not None:
                    self._current[1].shutdown()
                headers = {"Authorization": f"Bearer {token}"} if token else None
                self._current = (
                    token,
                    OTLPSpanExporter(endpoint=self._endpoint, headers=headers, timeout=self._timeout),
                )
            return self._current[1]

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            return self._exporter().export(spans)
        except Exception:
            _LOG.debug("otel-crew: export to AgentOps failed", exc_info=True)
            return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        with self._lock:
            if self._current is not None:
                self._current[1].shutdown()
                self._current = None


_replacements: weakref.WeakKeyDictionary[Any, BearerTokenOTLPExporter] = weakref.WeakKeyDictionary()
_replacements_lock = threading.Lock()
_announced = threading.Event()


def _broken(exporter: Any) -> bool:
    """AgentOps' export reads these two; OpenTelemetry 1.45 removed them."""
    return not (hasattr(exporter, "_headers") and hasattr(exporter, "_session"))


def _replacement_for(exporter: Any) -> BearerTokenOTLPExporter:
    import agentops

    with _replacements_lock:
        replacement = _replacements.get(exporter)
        if replacement is None:
            endpoint = agentops.get_client().config.exporter_endpoint
            replacement = BearerTokenOTLPExporter(endpoint, token=exporter._get_current_jwt)
            _replacements[exporter] = replacement
    return replacement


def _export(wrapped: Callable[..., SpanExportResult], exporter: Any, args: Any, kwargs: Any) -> SpanExportResult:
    if not _broken(exporter):
        return wrapped(*args, **kwargs)
    if not _announced.is_set():
        _announced.set()
        _LOG.info(
            "otel-crew: AgentOps' exporter cannot send with this OpenTelemetry version (its private "
            "OTLP exporter fields are gone); otel-crew sends AgentOps' spans with OpenTelemetry's public "
            "OTLP/HTTP exporter instead"
        )
    return _replacement_for(exporter).export(*args, **kwargs)


def repair_agentops_export() -> bool:
    """Install the repair (idempotent). False when AgentOps' exporter is not there."""
    import wrapt

    try:
        from agentops.sdk.exporters import AuthenticatedOTLPExporter
    except ImportError:
        return False
    if not isinstance(vars(AuthenticatedOTLPExporter).get("export"), wrapt.FunctionWrapper):
        wrapt.wrap_function_wrapper(AuthenticatedOTLPExporter, "export", _export)
    return True


def undo_agentops_export_repair() -> None:
    import wrapt

    try:
        from agentops.sdk.exporters import AuthenticatedOTLPExporter
    except ImportError:
        return
    export = vars(AuthenticatedOTLPExporter).get("export")
    if isinstance(export, wrapt.FunctionWrapper):
        AuthenticatedOTLPExporter.export = export.__wrapped__
