"""Carrying the OpenTelemetry context into threads that CrewAI starts bare.

CrewAI before 1.11 runs ``async_execution`` tasks and agent timeouts in new
threads without copying ``contextvars``, so spans started there would lose
their parent. The thread's starter *leaves* its context under a key (the task
object); the first call inside the new thread *takes* it and runs attached to
it. Where CrewAI copies the context itself, taking it again changes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable

from opentelemetry import context as otel_context
from opentelemetry.context import Context

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
