"""Putting otel-crew's processors ahead of the user's exporting ones.

The unclosed-root processor ends open roots at shutdown; if an exporting
processor shut down before it, those roots would be dropped. The SDK only
appends processors, so ``install_first`` puts ours at the front of the
provider's processor tuple when the SDK's layout is the known one, and
appends (with a debug line) otherwise. Add them yourself before your
exporters when you build the provider by hand.

``AwaitedProvider`` stands in when ``instrument()`` finds no SDK provider yet
(the API's placeholder ``ProxyTracerProvider``): spans go to whatever global
provider is set later, and the processors are installed in it at the first
span started after it is set.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.util._decorator import _agnosticcontextmanager

from otel_crew.install import pip_install

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
    if isinstance(provider, AwaitedProvider):
        provider = provider.installed_in
    found = _processor_tuple(provider)
    if found is None:
        return
    multi, lock = found
    with lock:
        multi._span_processors = tuple(p for p in multi._span_processors if p is not processor)


NO_PROVIDER_YET = (
    "otel-crew: no SDK tracer provider yet (the global one is OpenTelemetry's placeholder); spans and root "
    "watching start once one is set: call otel_crew.configure(), or run under opentelemetry-instrument with "
    f"the distro installed ({pip_install('auto')})"
)


class AwaitedProvider(trace.TracerProvider):
    """The global provider, once one is set; our processors go into it then, once."""

    def __init__(self, processors: Sequence[SpanProcessor]) -> None:
        self._processors = list(processors)
        self._lock = threading.Lock()
        self.installed_in: Any = None
        _LOG.warning(NO_PROVIDER_YET)

    def resolve(self) -> None:
        """Install the processors in the global provider if it is a real one now."""
        if self.installed_in is not None:
            return
        current = trace.get_tracer_provider()
        if isinstance(current, trace.ProxyTracerProvider):
            return
        with self._lock:
            if self.installed_in is None:
                for processor in reversed(self._processors):
                    install_first(current, processor)
                self.installed_in = current
                _LOG.info("otel-crew: a global tracer provider is set; roots are watched from now on")

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _AwaitingTracer(self, trace.get_tracer_provider().get_tracer(*args, **kwargs))


class _AwaitingTracer(trace.Tracer):
    """A tracer that asks its ``AwaitedProvider`` to resolve before each span."""

    def __init__(self, owner: AwaitedProvider, inner: trace.Tracer) -> None:
        self._owner = owner
        self._inner = inner

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        self._owner.resolve()
        return self._inner.start_span(*args, **kwargs)

    @_agnosticcontextmanager
    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Iterator[trace.Span]:
        self._owner.resolve()
        with self._inner.start_as_current_span(*args, **kwargs) as span:
            yield span
