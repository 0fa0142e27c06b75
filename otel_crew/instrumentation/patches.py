"""Applying the patch table: each CrewAI method wrapped in place and recorded
with the exact object that stood before, so that it can be put back; and the
methods the installed CrewAI lacks, said once per ``instrument()``.

A method CrewAI added in a later line than the installed one is absent by
design: said at INFO, since nothing is wrong. Any other absence means CrewAI
changed in a way otel-crew does not know yet: a WARNING, since those calls go
untraced.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import wrapt
from packaging.version import InvalidVersion, Version

__all__ = ["Patch", "PatchError", "Row", "apply", "report_missing"]

_LOG = logging.getLogger(__name__)

Row = tuple[str, str, str, Callable[..., Any]]
"""(module, class, method, wrapper)."""


@dataclass(frozen=True)
class Patch:
    owner: type
    name: str
    original: Any

    def undo(self) -> None:
        setattr(self.owner, self.name, self.original)


class PatchError(Exception):
    """A row of the table could not be applied; ``str()`` names it."""


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
            wrapt.wrap_function_wrapper(owner, method, wrapper)
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


def _installed_crewai() -> Version | None:
    try:
        return Version(version("crewai"))
    except (PackageNotFoundError, InvalidVersion):
        return None


def report_missing(missing: Sequence[str], added_in: Mapping[str, str]) -> None:
    """One INFO line for methods newer than the installed CrewAI (``added_in``:
    name -> the first CrewAI line known to have it), one WARNING for the rest."""
    installed = _installed_crewai()
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
