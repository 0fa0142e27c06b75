"""``configure()``: a tracer provider from the standard OpenTelemetry variables, in one call.

For people without a provider of their own. It builds a new SDK
``TracerProvider`` (never the global one, never one you already have) with:

- the resource from ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``;
- batch export over OTLP, ``OTEL_EXPORTER_OTLP_PROTOCOL`` ``grpc`` (the
  default) or ``http/protobuf``, to ``OTEL_EXPORTER_OTLP_ENDPOINT`` with
  ``OTEL_EXPORTER_OTLP_HEADERS`` (read by OpenTelemetry's own exporters);
  ``OTEL_TRACES_EXPORTER=none`` or ``console`` as the SDK defines them;
- CrewAI instrumented into it, with the unclosed-root processor and (when
  AgentOps is installed) the AgentOps session bridge.

An exporter that cannot reach its collector never slows the pipeline (export
runs on the batch processor's thread) and says so in one log line per outage.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)

__all__ = ["configure", "otlp_exporter"]

_LOG = logging.getLogger(__name__)

PROTOCOLS = ("grpc", "http/protobuf")
DEFAULT_ENDPOINTS = {"grpc": "http://localhost:4317", "http/protobuf": "http://localhost:4318"}


def otlp_protocol() -> str:
    """The OTLP protocol the variables ask for; refuses one we cannot speak."""
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    ).strip()
    if protocol not in PROTOCOLS:
        raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: otel-crew exports with one of {PROTOCOLS}")
    return protocol


def otlp_endpoint() -> str:
    """Where OTLP traces go: the variable, else the protocol's default."""
    return (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or DEFAULT_ENDPOINTS[otlp_protocol()]
    )


class _OutageReporting(SpanExporter):
    """Wraps an exporter: one clear log line when exports start failing, one
    when they work again, nothing per span."""

    def __init__(self, exporter: SpanExporter, target: str) -> None:
        self._exporter = exporter
        self._target = target
        self._failing = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._exporter.export(spans)
        except Exception:  # an exporter must not raise, but one that does stays contained
            _LOG.debug("otel-crew: exporter raised", exc_info=True)
            result = SpanExportResult.FAILURE
        failing = result is not SpanExportResult.SUCCESS
        if failing and not self._failing:
            _LOG.warning("otel-crew: cannot export spans to %s; they are dropped until it answers", self._target)
        elif self._failing and not failing:
            _LOG.warning("otel-crew: exporting spans to %s again", self._target)
        self._failing = failing
        return result

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.force_flush(timeout_millis)


def otlp_exporter() -> SpanExporter:
    """OpenTelemetry's OTLP span exporter for the protocol the variables ask for
    (endpoint, headers, timeout and compression come from the variables too)."""
    protocol = otlp_protocol()
    exporter: SpanExporter
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        exporter = GrpcExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        exporter = HttpExporter()
    return _OutageReporting(exporter, f"{otlp_endpoint()} ({protocol})")


def _exporter_from_env() -> SpanExporter | None:
    choice = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if choice == "none":
        return None
    if choice == "console":
        return ConsoleSpanExporter()
    if choice != "otlp":
        raise ValueError(f"OTEL_TRACES_EXPORTER={choice!r}: configure() knows otlp, console and none")
    return otlp_exporter()


def configure(instrument: bool = True, **instrument_options: Any) -> TracerProvider:
    """Build and return a tracer provider from the standard variables.

    With ``instrument`` (the default) CrewAI is instrumented into it, with
    ``instrument_options`` passed to ``OtelCrewInstrumentor().instrument``.
    The provider is not made global: pass it where you need it, and call its
    ``shutdown()`` at the end (it also runs at exit).
    """
    provider = TracerProvider(resource=Resource.create())
    exporter = _exporter_from_env()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    if instrument:
        from otel_crew.instrumentation.instrumentor import OtelCrewInstrumentor

        OtelCrewInstrumentor().instrument(tracer_provider=provider, **instrument_options)
    return provider
