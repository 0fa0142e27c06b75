"""What every wrapper shares: the wrapped-call signature, reading a call's
arguments, and the marker of the innermost tool or agent step."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

Wrapped = Callable[..., Any]

# Identity of the innermost tool or agent step, so that CrewAI's own layering
# (invoke -> run, retries that recurse) makes one span, not two.
active_step: contextvars.ContextVar[tuple[int, ...] | None] = contextvars.ContextVar(
    "otel_crewactive_step", default=None
)


class StepMarker:
    """``with StepMarker(key):`` marks the innermost tool or agent step (a class: it runs on every step)."""

    __slots__ = ("_key", "_token")

    def __init__(self, key: tuple[int, ...]) -> None:
        self._key = key

    def __enter__(self) -> None:
        self._token = active_step.set(self._key)

    def __exit__(self, *exc_info: object) -> None:
        active_step.reset(self._token)


def call_arg(args: tuple[Any, ...], kwargs: dict[str, Any], position: int, name: str) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[position] if len(args) > position else None
