"""Keeping CrewAI from ending the AgentOps session itself inside a root.

CrewAI 0.95 to 0.102 call ``agentops.end_session(..., is_auto_end=True)`` from
``Crew._finish_execution``; 0.105 to about 0.164 call ``agentops.init()`` at
each kickoff start and ``session.end_session(...)`` at each completion, from
their AgentOps event listener. Inside a root those calls are suppressed (the
root's end decides); a call from the user's own code always goes through.
AgentOps offers no switch for this (``skip_auto_end_session`` is read by
nothing), so the guards wrap its functions while the processor lives.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import wrapt

__all__ = ["AutoEndGuards"]


def _is_crewai_module(module: str) -> bool:
    return module == "crewai" or module.startswith("crewai.")


def _called_from_crewai() -> bool:
    """Whether the AgentOps function a guard wraps was called by CrewAI's own
    code (the first caller outside otel-crew and wrapt). Only on the rare
    guarded calls, so the frame walk costs nothing on the hot path."""
    frame = sys._getframe(1)
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if not module.startswith(("otel_crew.", "wrapt")):
            return _is_crewai_module(module)
        frame = frame.f_back  # type: ignore[assignment]
    return False


class AutoEndGuards:
    """Guards on ``agentops.end_session``, ``agentops.init`` and the legacy
    ``Session.end_session``; ``install()`` and ``remove()`` are mirror images.

    Args:
        agentops: the imported ``agentops`` module (None: nothing to guard).
        inside_root: whether the current span belongs to an open root.
        on_suppressed: told the name of each call suppressed.
    """

    def __init__(self, agentops: Any, inside_root: Callable[[], bool], on_suppressed: Callable[[str], None]) -> None:
        self._agentops = agentops
        self._inside_root = inside_root
        self._on_suppressed = on_suppressed
        self._installed: list[tuple[Any, str, Any]] = []

    def _suppresses(self) -> bool:
        return _called_from_crewai() and self._inside_root()

    def _guard_end(self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        if self._suppresses():
            self._on_suppressed("end_session")
            return None
        return wrapped(*args, **kwargs)

    def _guard_init(self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        if not self._suppresses():
            return wrapped(*args, **kwargs)
        self._on_suppressed("init")
        if not self._agentops.get_client().initialized:
            # Users who rely on CrewAI's implicit init (API key in the
            # environment) keep AgentOps, minus the session CrewAI would end.
            wrapped(*args, **{**kwargs, "auto_start_session": False})
        return None

    def install(self) -> None:
        agentops = self._agentops
        if agentops is None or self._installed:
            return
        targets = [(agentops, "end_session", self._guard_end), (agentops, "init", self._guard_init)]
        legacy_session = getattr(getattr(agentops, "legacy", None), "Session", None)
        if legacy_session is not None:
            targets.append((legacy_session, "end_session", self._guard_end))
        for owner, name, guard in targets:
            original = getattr(owner, name, None)
            if original is not None:
                setattr(owner, name, wrapt.FunctionWrapper(original, guard))
                self._installed.append((owner, name, original))

    def remove(self) -> None:
        for owner, name, original in reversed(self._installed):
            setattr(owner, name, original)
        self._installed = []
