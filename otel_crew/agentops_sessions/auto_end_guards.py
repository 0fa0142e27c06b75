"""Keeping CrewAI from ending the AgentOps session itself inside a root.

CrewAI 0.95 to 0.102 call ``agentops.end_session(..., is_auto_end=True)`` from
``Crew._finish_execution``; 0.105 to about 0.164 call ``agentops.init()`` at
each kickoff start and ``session.end_session(...)`` at each completion, from
their AgentOps event listener. Inside a root those calls are suppressed (the
root's end decides); a call from the user's own code always goes through.
AgentOps offers no switch for this (``skip_auto_end_session`` is read by
nothing), so the guards wrap its functions while a processor holds them.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import wrapt

__all__ = ["GUARDS", "AutoEndGuards", "GuardHold"]


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


@dataclass(frozen=True, eq=False)
class GuardHold:
    """One processor's use of the guards: how it tells it is inside a root,
    and who is told of a suppressed call."""

    inside_root: Callable[[], bool]
    on_suppressed: Callable[[str], None]


class AutoEndGuards:
    """Guards on ``agentops.end_session``, ``agentops.init`` and the legacy
    ``Session.end_session``, installed once for the process while any
    processor holds them (``hold`` / ``release``, mirror images): repeated
    instrument/uninstrument never stacks them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holds: tuple[GuardHold, ...] = ()  # replaced whole: the guards read it without the lock
        # owner, name, the original there (None: inherited, not the owner's own), our wrapper
        self._installed: list[tuple[Any, str, Any, Any]] = []
        self._agentops: Any = None

    def hold(self, agentops: Any, inside_root: Callable[[], bool], on_suppressed: Callable[[str], None]) -> GuardHold:
        held = GuardHold(inside_root, on_suppressed)
        with self._lock:
            self._holds = (*self._holds, held)
            if not self._installed:
                self._install(agentops)
        return held

    def release(self, held: GuardHold) -> None:
        with self._lock:
            self._holds = tuple(other for other in self._holds if other is not held)
            if not self._holds:
                self._remove()

    @property
    def installed(self) -> int:
        """How many AgentOps functions are guarded now (tests, doctor)."""
        return len(self._installed)

    def _suppressing(self) -> GuardHold | None:
        holds = self._holds
        if not holds or not _called_from_crewai():
            return None
        return next((held for held in holds if held.inside_root()), None)

    def _guard_end(self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        held = self._suppressing()
        if held is None:
            return wrapped(*args, **kwargs)
        held.on_suppressed("end_session")
        return None

    def _guard_init(self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        held = self._suppressing()
        if held is None:
            return wrapped(*args, **kwargs)
        held.on_suppressed("init")
        if not self._agentops.get_client().initialized:
            # Users who rely on CrewAI's implicit init (API key in the
            # environment) keep AgentOps, minus the session CrewAI would end.
            wrapped(*args, **{**kwargs, "auto_start_session": False})
        return None

    def _install(self, agentops: Any) -> None:
        self._agentops = agentops
        targets = [(agentops, "end_session", self._guard_end), (agentops, "init", self._guard_init)]
        legacy_session = getattr(getattr(agentops, "legacy", None), "Session", None)
        if legacy_session is not None:
            targets.append((legacy_session, "end_session", self._guard_end))
        for owner, name, guard in targets:
            original = getattr(owner, name, None)
            if original is not None:
                wrapper = wrapt.FunctionWrapper(original, guard)
                own = vars(owner).get(name)
                setattr(owner, name, wrapper)
                self._installed.append((owner, name, own, wrapper))

    def _remove(self) -> None:
        for owner, name, own, wrapper in reversed(self._installed):
            # A wrapper someone put over ours stays (ours, inert with no holds, inside it).
            if vars(owner).get(name) is not wrapper:
                continue
            if own is None:
                delattr(owner, name)  # it was inherited: inherit it again
            else:
                setattr(owner, name, own)
        self._installed = []


GUARDS = AutoEndGuards()
"""The one set of guards of the process."""
