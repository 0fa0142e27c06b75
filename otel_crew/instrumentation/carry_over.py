"""Carrying the OpenTelemetry context into threads that CrewAI starts bare.

CrewAI before 1.11 runs ``async_execution`` tasks and agent timeouts in new
threads without copying ``contextvars``, so spans started there would lose
their parent. The thread's starter *leaves* its context under a key (the task
object); the first call inside the new thread *takes* it and runs attached to
it. Where CrewAI copies the context itself, taking it again changes nothing.

``ContextHandoff`` is the mailbox; ``CarryOverWrappers`` are the wrappers
around the methods that start such a thread and that run inside it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from otel_crew.instrumentation.calls import Wrapped, call_arg

_MAX_WAITING = 1024
"""Hand-offs never taken (a cancelled future) are dropped beyond this many."""


class ContextHandoff:
    """A small, bounded mailbox of contexts keyed by the object being handed over."""

    def __init__(self) -> None:
        self._waiting: dict[Hashable, Context] = {}
        self._lock = threading.Lock()

    def leave(self, key: Hashable) -> None:
        with self._lock:
            self._waiting[key] = otel_context.get_current()
            if len(self._waiting) > _MAX_WAITING:
                del self._waiting[next(iter(self._waiting))]

    def take(self, key: Hashable) -> Context | None:
        if not self._waiting:  # the usual case, read without the lock: a leave() for us came before our thread
            return None
        with self._lock:
            return self._waiting.pop(key, None)


@dataclass
class CarryOverWrappers:
    """Wrappers that leave the context where CrewAI starts a thread and take it inside."""

    handoff: ContextHandoff

    def leave_context(self, key_argument: tuple[int, str] | None) -> Callable[..., Any]:
        """Wrapper for a method that starts a thread: leave the context, keyed by
        the instance (or by the argument at ``key_argument``)."""

        def leave(wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            self.handoff.leave(self._handoff_key(instance, args, kwargs, key_argument))
            return wrapped(*args, **kwargs)

        return leave

    def take_context(self, key_argument: tuple[int, str] | None) -> Callable[..., Any]:
        """Wrapper for the method that runs in that thread: run attached to the
        context that was left for it."""

        def take(wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            left = self.handoff.take(self._handoff_key(instance, args, kwargs, key_argument))
            if left is None:
                return wrapped(*args, **kwargs)
            token = otel_context.attach(left)
            try:
                return wrapped(*args, **kwargs)
            finally:
                otel_context.detach(token)

        return take

    @staticmethod
    def _handoff_key(
        instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], key_argument: tuple[int, str] | None
    ) -> tuple[str, int]:
        if key_argument is None:
            return ("instance", id(instance))
        return ("argument", id(call_arg(args, kwargs, *key_argument)))
