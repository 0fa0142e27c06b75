"""An SDK tracer provider with a no-op exporter, and the SDK's own cost of one span."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult


class CountingExporter(SpanExporter):
    """Exports nowhere; counts what it was given."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS


def provider_with_noop_export() -> tuple[TracerProvider, CountingExporter]:
    provider = TracerProvider()
    exporter = CountingExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def child_span_under(tracer: trace.Tracer, parent: trace.Span) -> None:
    """One non-root span, started and ended: what every span of every user costs."""
    tracer.start_span("child", context=trace.set_span_in_context(parent)).end()
