"""Applying the patch table: each CrewAI method wrapped in place and recorded
with the exact object that stood before, so that it can be put back; and the
methods the installed CrewAI lacks, said once per ``instrument()``.

What stands in the class is a plain function (or ``classmethod``), not a
``wrapt`` proxy, because CrewAI looks at its own methods: its A2A support
treats a ``__wrapped__`` on ``agent.execute_task`` as the sign of its own
per-instance wrapper, and builds that wrapper from ``agent.execute_task.__func__``.
A proxy answers both with the *original* function, so an A2A agent would run
untraced and CrewAI's check would see a wrapper that is not there. A plain
stand-in has no ``__wrapped__``, and ``__func__`` is the stand-in itself, so
A2A's wrapper calls through it. Wrappers keep ``wrapt``'s signature,
``wrapper(wrapped, instance, args, kwargs)``, ``wrapped`` being the original
bound to ``instance``.

``inject_patch`` wraps a propagator's ``inject`` the same way (a ``wrapt``
wrapper at class level, recorded for undoing), for the hooks that change what
context a propagator sends (``baggage_guard``, ``handoff``).

A method CrewAI added in a later line than the installed one is absent by
design: said at INFO, since nothing is wrong. Any other absence means CrewAI
changed in a way otel-crew does not know yet: a WARNING, since those calls go
untraced.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import wrapt
from opentelemetry.context import Context
from packaging.version import InvalidVersion, Version

__all__ = ["Patch", "PatchError", "Row", "Wrapper", "apply", "installed_crewai", "report_missing", "stand_in"]

_LOG = logging.getLogger(__name__)

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]
Row = tuple[str, str, str, Wrapper]
"""(module, class, method, wrapper)."""

_DESCRIBING = ("__module__", "__name__", "__qualname__", "__doc__")


@dataclass(frozen=True)
class Patch:
    owner: type
    name: str
    original: Any

    def undo(self) -> None:
        setattr(self.owner, self.name, self.original)


def inject_patch(propagator: type, context_to_send: Callable[[Context | None], Context | None]) -> Patch:
    """Wrap ``propagator.inject(carrier, context=None, setter=...)`` at class level so that it sends
    ``context_to_send(context)`` (given the caller's context; None: the current one) whenever that is
    another context; the returned patch undoes it."""

    def inject(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        given = kwargs.get("context", args[1] if len(args) > 1 else None)
        sent = context_to_send(given)
        if sent is not given:
            if len(args) > 1:
                args = (args[0], sent, *args[2:])
            else:
                kwargs = {**kwargs, "context": sent}
        return wrapped(*args, **kwargs)

    original = vars(propagator)["inject"]
    wrapt.wrap_function_wrapper(propagator, "inject", inject)
    return Patch(propagator, "inject", original)


class PatchError(Exception):
    """A row of the table could not be applied; ``str()`` names it."""


def _described_like(stand_in: Callable[..., Any], function: Callable[..., Any]) -> Callable[..., Any]:
    """``stand_in`` named, documented and signed like ``function``; deliberately no ``__wrapped__``."""
    for attribute in _DESCRIBING:
        if hasattr(function, attribute):
            setattr(stand_in, attribute, getattr(function, attribute))
    with contextlib.suppress(TypeError, ValueError):  # an odd callable: keep the stand-in's own signature
        stand_in.__signature__ = inspect.signature(function)  # type: ignore[attr-defined]
    return stand_in


def _stand_in_for_function(original: Callable[..., Any], wrapper: Wrapper) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(original):

        async def observed_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            return await wrapper(original.__get__(self, type(self)), self, args, kwargs)

        return _described_like(observed_async, original)

    def observed(self: Any, *args: Any, **kwargs: Any) -> Any:
        return wrapper(original.__get__(self, type(self)), self, args, kwargs)

    return _described_like(observed, original)


def _stand_in_for_classmethod(original: classmethod[Any, Any, Any], wrapper: Wrapper) -> classmethod[Any, Any, Any]:
    def observed(cls: type, *args: Any, **kwargs: Any) -> Any:
        return wrapper(original.__get__(None, cls), cls, args, kwargs)

    return classmethod(_described_like(observed, original.__func__))


def stand_in(original: Any, wrapper: Wrapper) -> Any:
    """What goes into the class in place of ``original`` (a function or a
    classmethod) so that every call runs through ``wrapper``."""
    if isinstance(original, classmethod):
        return _stand_in_for_classmethod(original, wrapper)
    if inspect.isfunction(original):
        return _stand_in_for_function(original, wrapper)
    raise TypeError(f"cannot observe {original!r}: not a function or classmethod")


def _owner(module_name: str, class_name: str) -> type | None:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and module_name.startswith(error.name):
            return None  # the module itself is absent from this CrewAI
        raise
    owner = getattr(module, class_name, None)
    return owner if isinstance(owner, type) else None


def _defining_class(owner: type, method: str) -> type | None:
    return next((base for base in owner.__mro__ if method in vars(base)), None)


def apply(rows: Sequence[Row], patches: list[Patch]) -> list[str]:
    """Wrap every method of ``rows`` the installed CrewAI has; return the names
    of those it lacks.

    Each patch is appended to ``patches`` as soon as it is in place, so that
    when a row fails (``PatchError``) ``patches`` holds exactly what to undo.
    Only a method the class defines itself is wrapped: wrapping an inherited
    one would leave a copy behind in the subclass after undo. An inherited
    method is not missing when the class it comes from is wrapped for it.
    """
    missing: list[str] = []
    inherited: list[tuple[type, str]] = []
    for module_name, class_name, method, wrapper in rows:
        try:
            owner = _owner(module_name, class_name)
            if owner is None:
                missing.append(f"{class_name}.{method}")
                continue
            original = vars(owner).get(method)
            if original is None:
                inherited.append((owner, method))
                continue
            setattr(owner, method, stand_in(original, wrapper))
        except Exception as error:
            raise PatchError(f"{class_name}.{method}") from error
        patches.append(Patch(owner, method, original))
    wrapped = {(patch.owner, patch.name) for patch in patches}
    missing += [
        f"{owner.__name__}.{method}"
        for owner, method in inherited
        if (_defining_class(owner, method), method) not in wrapped
    ]
    return missing


def installed_crewai() -> Version | None:
    """The installed CrewAI's version; None when it is not installed or its version does not parse."""
    try:
        return Version(version("crewai"))
    except (PackageNotFoundError, InvalidVersion):
        return None


def report_missing(missing: Sequence[str], added_in: Mapping[str, str]) -> None:
    """One INFO line for methods newer than the installed CrewAI (``added_in``:
    name -> the first CrewAI line known to have it), one WARNING for the rest."""
    installed = installed_crewai()
    by_design = [
        name for name in missing if installed is not None and name in added_in and installed < Version(added_in[name])
    ]
    unexpected = [name for name in missing if name not in by_design]
    if by_design:
        _LOG.info(
            "otel-crew: CrewAI %s has no %s (later CrewAI lines added them); nothing to trace there",
            installed,
            ", ".join(by_design),
        )
    if unexpected:
        _LOG.warning(
            "otel-crew: CrewAI %s has no %s, which otel-crew wraps; calls through them will not be traced",
            installed if installed is not None else "(version unknown)",
            ", ".join(unexpected),
        )
