"""Putting otel-crew's processors ahead of the user's exporting ones.

The unclosed-root processor ends open roots at shutdown; if an exporting
processor shut down before it, those roots would be dropped. The SDK only
appends processors, so ``install_first`` puts ours at the front of the
provider's processor tuple when the SDK's layout is the known one, and
appends (with a debug line) otherwise. Add them yourself before your
exporters when you build the provider by hand.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.sdk.trace import SpanProcessor

_LOG = logging.getLogger(__name__)


def _processor_tuple(provider: Any) -> tuple[Any, Any] | None:
    """The provider's multi-processor and its lock, if laid out as the SDK does."""
    multi = getattr(provider, "_active_span_processor", None)
    lock = getattr(multi, "_lock", None)
    if isinstance(getattr(multi, "_span_processors", None), tuple) and lock is not None:
        return multi, lock
    return None


def install_first(provider: Any, processor: SpanProcessor) -> bool:
    """Add ``processor`` to ``provider``, first in line; False when the provider takes none."""
    if not hasattr(provider, "add_span_processor"):
        _LOG.warning("otel-crew: the tracer provider %r takes no span processors; roots are not watched", provider)
        return False
    found = _processor_tuple(provider)
    if found is None:
        _LOG.debug("otel-crew: unknown SDK layout; %r appended after existing processors", processor)
        provider.add_span_processor(processor)
        return True
    multi, lock = found
    with lock:
        multi._span_processors = (processor, *multi._span_processors)
    return True


def uninstall(provider: Any, processor: SpanProcessor) -> None:
    found = _processor_tuple(provider)
    if found is None:
        return
    multi, lock = found
    with lock:
        multi._span_processors = tuple(p for p in multi._span_processors if p is not processor)
