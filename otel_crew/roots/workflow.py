"""``workflow()``: the user-owned root span of a pipeline of crews.

The outermost ``workflow()`` in a context is the root of everything inside it
and carries ``otel_crew.root=true``; an inner one is an ordinary child. It
nests under the current span when there is one (a web request, say), so
distributed traces stay whole, and starts a new trace otherwise.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from types import TracebackType
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, TracerProvider
from opentelemetry.util.types import AttributeValue

from otel_crew.roots.scope import SpanScope
from otel_crew.semconv import ROOT_ATTRIBUTE, SCHEMA_URL
from otel_crew.version import __version__

__all__ = ["workflow"]

_INSIDE_WORKFLOW = otel_context.create_key("otel_crew.inside_workflow")
_default_provider: TracerProvider | None = None

F = TypeVar("F", bound=Callable[..., Any])


def use_tracer_provider(provider: TracerProvider | None) -> None:
    """Make ``workflow()`` use ``provider`` when it is given none (the instrumentor's)."""
    global _default_provider
    _default_provider = provider


def _validated_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"workflow(name): expected a non-empty str, got {type(name).__name__}")
    if not name.strip():
        raise ValueError("workflow(name): the name must not be empty")
    return name


def _validated_attributes(attributes: object) -> dict[str, AttributeValue]:
    if attributes is None:
        return {}
    if not isinstance(attributes, Mapping):
        raise TypeError(
            f"workflow(attributes=...): expected a mapping of str to attribute values, got {type(attributes).__name__}"
        )
    for key in attributes:
        if not isinstance(key, str) or not key:
            raise TypeError(f"workflow(attributes=...): keys must be non-empty str, got {key!r}")
    return dict(attributes)


class workflow:  # noqa: N801 - a function-like name, as users write it
    """The root span of a pipeline: ``with workflow("name"):``, ``async with``,
    or ``@workflow("name")`` on a sync or async function.

    The span's status is OK when the body returns and ERROR (with the exception
    recorded) when it raises; a status the body sets itself wins. The exception
    propagates unchanged.

    One object may be entered from several threads or asyncio tasks at once,
    and re-entered inside itself: each use gets its own span, kept in a context
    variable of this object, so each exit ends the span its own context began.
    """

    def __init__(
        self,
        name: str,
        attributes: Mapping[str, AttributeValue] | None = None,
        *,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.name = _validated_name(name)
        self.attributes = _validated_attributes(attributes)
        self._tracer_provider = tracer_provider
        # Per use: each thread and task sees its own stack of open scopes.
        self._scopes: ContextVar[tuple[SpanScope, ...]] = ContextVar(f"otel_crew_workflow_{self.name}", default=())

    def _open(self) -> Span:
        provider = self._tracer_provider or _default_provider
        tracer = trace.get_tracer("otel_crew", __version__, tracer_provider=provider, schema_url=SCHEMA_URL)
        attributes = dict(self.attributes)
        outermost = not otel_context.get_value(_INSIDE_WORKFLOW)
        if outermost:
            attributes[ROOT_ATTRIBUTE] = True
        scope = SpanScope(
            tracer, self.name, attributes, extra_context={_INSIDE_WORKFLOW: True}, root=outermost, ok_on_success=True
        )
        span = scope.__enter__()
        self._scopes.set((*self._scopes.get(), scope))
        return span

    def _close(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        open_scopes = self._scopes.get()
        if not open_scopes:
            raise RuntimeError(
                f"workflow({self.name!r}) exited in a thread or task that did not enter it; "
                "enter and exit a workflow in the same context"
            )
        self._scopes.set(open_scopes[:-1])
        open_scopes[-1].__exit__(exc_type, exc, traceback)

    def __enter__(self) -> Span:
        return self._open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._close(exc_type, exc, traceback)

    async def __aenter__(self) -> Span:
        return self._open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._close(exc_type, exc, traceback)

    def _fresh(self) -> workflow:
        return workflow(self.name, self.attributes, tracer_provider=self._tracer_provider)

    def __call__(self, function: F) -> F:
        if not callable(function):
            raise TypeError(f"@workflow({self.name!r}) decorates a function, got {type(function).__name__}")
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                async with self._fresh():
                    return await function(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self._fresh():
                return function(*args, **kwargs)

        return run  # type: ignore[return-value]
