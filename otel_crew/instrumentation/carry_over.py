"""Carrying the OpenTelemetry context into threads that CrewAI starts bare.

CrewAI before 1.11 runs ``async_execution`` tasks and agent timeouts in new
threads without copying ``contextvars``, so spans started there would lose
their parent. The thread's starter *leaves* its context under a key (the task
object); the first call inside the new thread *takes* it and runs attached to
it. From CrewAI 1.11 on, CrewAI copies the context itself and these wrappers
are not installed (``instrumentor.CARRY_OVER_BEFORE``).

``ContextHandoff`` is the mailbox; ``CarryOverWrappers`` are the wrappers
around the methods that start such a thread and that run inside it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from otel_crew.instrumentation.calls import Wrapped, call_arg

_Key = tuple[str, int]
_MAX_HELD_STRONGLY = 100_000
"""Hand-offs for objects that take no weak reference are held strongly (so
their id cannot be reused while waiting); past this many the oldest such one
is dropped. Crews and tasks take weak references and are never dropped."""


class _Strong:
    """The strong stand-in for a weak reference, for objects that take none."""

    __slots__ = ("_target",)

    def __init__(self, target: object) -> None:
        self._target = target

    def __call__(self) -> object:
        return self._target


class ContextHandoff:
    """A mailbox of contexts keyed by the identity of the object handed over.

    An entry holds its object weakly and goes when the object goes, so no
    size limit drops a waiting hand-off and an id reused by a later object can
    never find an earlier object's context (the entry checks it is the same
    object). Objects that take no weak reference are held strongly instead.
    """

    def __init__(self) -> None:
        self._waiting: dict[_Key, tuple[Callable[[], object], Context]] = {}
        self._lock = threading.Lock()
        self._held_strongly = 0

    def leave(self, kind: str, handed_over: object) -> None:
        key = (kind, id(handed_over))
        holder: Callable[[], object]
        try:
            holder = weakref.ref(handed_over, self._forgetter(key))
        except TypeError:
            holder = _Strong(handed_over)
        with self._lock:
            self._waiting[key] = (holder, otel_context.get_current())
            if isinstance(holder, _Strong):
                self._held_strongly += 1
                if self._held_strongly > _MAX_HELD_STRONGLY:
                    self._drop_oldest_strong()

    def take(self, kind: str, handed_over: object) -> Context | None:
        if not self._waiting:  # the usual case, read without the lock: a leave() for us came before our thread
            return None
        with self._lock:
            entry = self._waiting.pop((kind, id(handed_over)), None)
            if entry is not None and isinstance(entry[0], _Strong):
                self._held_strongly -= 1
        if entry is None or entry[0]() is not handed_over:
            return None
        return entry[1]

    def _forgetter(self, key: _Key) -> Callable[[weakref.ref[Any]], None]:
        def forget(dead: weakref.ref[Any]) -> None:
            # No lock: this may run inside leave() or take() (a collection
            # triggered there), and a dict pop is atomic.
            entry = self._waiting.get(key)
            if entry is not None and entry[0] is dead:
                self._waiting.pop(key, None)

        return forget

    def _drop_oldest_strong(self) -> None:
        """Under the lock."""
        for key, (holder, _) in self._waiting.items():
            if isinstance(holder, _Strong):
                del self._waiting[key]
                self._held_strongly -= 1
                return

    def __len__(self) -> int:
        return len(self._waiting)


@dataclass
class CarryOverWrappers:
    """Wrappers that leave the context where CrewAI starts a thread and take it inside."""

    handoff: ContextHandoff

    def leave_context(self, key_argument: tuple[int, str] | None) -> Callable[..., Any]:
        """Wrapper for a method that starts a thread: leave the context, keyed by
        the instance (or by the argument at ``key_argument``)."""

        def leave(wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            self.handoff.leave(*self._handed_over(instance, args, kwargs, key_argument))
            return wrapped(*args, **kwargs)

        return leave

    def take_context(self, key_argument: tuple[int, str] | None) -> Callable[..., Any]:
        """Wrapper for the method that runs in that thread: run attached to the
        context that was left for it."""

        def take(wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            left = self.handoff.take(*self._handed_over(instance, args, kwargs, key_argument))
            if left is None:
                return wrapped(*args, **kwargs)
            token = otel_context.attach(left)
            try:
                return wrapped(*args, **kwargs)
            finally:
                otel_context.detach(token)

        return take

    @staticmethod
    def _handed_over(
        instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], key_argument: tuple[int, str] | None
    ) -> tuple[str, object]:
        if key_argument is None:
            return ("instance", instance)
        return ("argument", call_arg(args, kwargs, *key_argument))
