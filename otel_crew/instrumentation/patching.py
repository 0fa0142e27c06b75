"""Putting an observing stand-in into a CrewAI class, and taking it out again.

A stand-in is a plain function (or ``classmethod``) in the class, not a
``wrapt`` proxy, because CrewAI looks at its own methods: its A2A support
treats a ``__wrapped__`` on ``agent.execute_task`` as the sign of its own
per-instance wrapper, and builds that wrapper from ``agent.execute_task.__func__``.
A proxy answers both with the *original* function, so an A2A agent would run
untraced and CrewAI's check would see a wrapper that is not there. A plain
stand-in has no ``__wrapped__``, and ``__func__`` is the stand-in itself, so
A2A's wrapper calls through it.

A wrapper has ``wrapt``'s signature, ``wrapper(wrapped, instance, args, kwargs)``,
where ``wrapped`` is the original bound to ``instance``. ``Patch.undo()`` puts
back the exact object that stood in the class before.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]

_COPIED = ("__module__", "__name__", "__qualname__", "__doc__")


@dataclass(frozen=True)
class Patch:
    """One stand-in installed in ``owner`` under ``name``, replacing ``original``."""

    owner: type
    name: str
    original: Any

    def undo(self) -> None:
        setattr(self.owner, self.name, self.original)


def _described_like(stand_in: Callable[..., Any], function: Callable[..., Any]) -> Callable[..., Any]:
    """``stand_in`` named, documented and signed like ``function``; deliberately no ``__wrapped__``."""
    for attribute in _COPIED:
        if hasattr(function, attribute):
            setattr(stand_in, attribute, getattr(function, attribute))
    with contextlib.suppress(TypeError, ValueError):  # an odd callable: keep the stand-in's own signature
        stand_in.__signature__ = inspect.signature(function)  # type: ignore[attr-defined]
    return stand_in


def _stand_in_for_method(original: Callable[..., Any], wrapper: Wrapper) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(original):

        async def observed_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            return await wrapper(original.__get__(self, type(self)), self, args, kwargs)

        return _described_like(observed_async, original)

    def observed(self: Any, *args: Any, **kwargs: Any) -> Any:
        return wrapper(original.__get__(self, type(self)), self, args, kwargs)

    return _described_like(observed, original)


def _stand_in_for_classmethod(original: classmethod[Any, Any, Any], wrapper: Wrapper) -> classmethod[Any, Any, Any]:
    function = original.__func__

    def observed(cls: type, *args: Any, **kwargs: Any) -> Any:
        return wrapper(original.__get__(None, cls), cls, args, kwargs)

    return classmethod(_described_like(observed, function))


def install(owner: type, name: str, wrapper: Wrapper) -> Patch | None:
    """Put a stand-in for ``owner.name`` in place; None when ``owner`` does not
    define ``name`` itself (wrapping an inherited method would leave a copy in
    the subclass after ``undo()``)."""
    original = vars(owner).get(name)
    if isinstance(original, classmethod):
        stand_in: Any = _stand_in_for_classmethod(original, wrapper)
    elif inspect.isfunction(original):
        stand_in = _stand_in_for_method(original, wrapper)
    else:
        return None
    setattr(owner, name, stand_in)
    return Patch(owner, name, original)
