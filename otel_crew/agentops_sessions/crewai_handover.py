"""AgentOps' own CrewAI instrumentation, kept off while a session bridge runs.

AgentOps ships a CrewAI instrumentor (spans ``crewai.workflow``,
``{role}.agent``, ``{task}.task``) that it activates from its import hook
(``agentops.instrumentation``) when ``crewai`` is imported after
``agentops.init()``, or at ``init()`` when CrewAI was imported first. Beside
otel-crew it records every CrewAI step twice, and its spans become the
current span inside agents, so spans of other instrumentations hang from
spans the user's provider never exports. With ``agentops.init()`` before
``import crewai`` it also fails on a circular import.

While held (``hold`` / ``release``, reference-counted), AgentOps' registry
entry for CrewAI names ``CrewaiHandedOver``, an instrumentor that wraps
nothing: AgentOps still sees an agentic library active (so it keeps its
provider instrumentors off, as it does for CrewAI), but nothing of it runs
inside CrewAI. When AgentOps' CrewAI instrumentor already ran, its wrappers
are taken off CrewAI's methods (kept, not dropped). The last release gives
back exactly what AgentOps had: its registry entry, its very wrappers (where
nothing replaced the method since), and, if AgentOps activated CrewAI while
held, its own instrumentor, as AgentOps would have then.

Its wrappers are taken off only when they are the outermost ones: when another
wrapper sits over them (otel-crew instrumented before the bridge came on),
they stay, and one line says so.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

__all__ = ["CrewaiHandedOver", "held", "hold", "release"]

_LOG = logging.getLogger(__name__)

_KEY = "crewai"  # AgentOps' registry key, and the package it watches
# Where AgentOps' CrewAI instrumentor puts its wrappers (module, attribute path).
_AGENTOPS_WRAPPED = (
    ("crewai.crew", "Crew.kickoff"),
    ("crewai.agent", "Agent.execute_task"),
    ("crewai.task", "Task.execute_sync"),
    ("crewai.llm", "LLM.call"),
    ("crewai.utilities.tool_utils", "execute_tool_and_check_finality"),
    ("crewai.tools.tool_usage", "ToolUsage.use"),
)


class CrewaiHandedOver(BaseInstrumentor):  # type: ignore[misc]
    """Stands in AgentOps' registry for its CrewAI instrumentor: wraps nothing
    (otel-crew's spans reach AgentOps instead)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        pass

    def _uninstrument(self, **kwargs: Any) -> None:
        pass


@dataclass(slots=True)
class _Held:
    registry: Any  # agentops.instrumentation, the module
    entry: Any  # AgentOps' own registry entry for CrewAI
    taken: list[tuple[Any, str, Any]] = field(default_factory=list)  # AgentOps' wrappers taken off


_lock = threading.Lock()
_holders: set[int] = set()
_held: _Held | None = None


def _registry() -> Any:
    try:
        return importlib.import_module("agentops.instrumentation")
    except ImportError:
        return None


def _stand_in_entry(entry: Any) -> dict[str, str]:
    return {
        "module_name": __name__,
        "class_name": CrewaiHandedOver.__name__,
        "min_version": entry.get("min_version", "0"),
        "package_name": _KEY,
    }


def _owner_and_name(module_name: str, path: str) -> tuple[Any, str] | None:
    module = sys.modules.get(module_name)
    if module is None:
        return None  # never imported, so never wrapped
    owner: Any = module
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent, None)
    return None if owner is None else (owner, name)


def _agentops_wrapper(obj: Any) -> bool:
    wrapper = getattr(obj, "_self_wrapper", None) if isinstance(obj, wrapt.ObjectProxy) else None
    return str(getattr(wrapper, "__module__", "")).startswith("agentops.")


def _wrapped_by_agentops() -> list[tuple[Any, str, Any]] | None:
    """(owner, name, AgentOps' wrapper) where AgentOps' wrappers stand, outermost;
    None when one of them has another wrapper over it."""
    found = []
    for module_name, path in _AGENTOPS_WRAPPED:
        place = _owner_and_name(module_name, path)
        if place is None:
            continue
        owner, name = place
        current = vars(owner).get(name) if isinstance(owner, type) else getattr(owner, name, None)
        if _agentops_wrapper(current):
            found.append((owner, name, current))
        elif _agentops_wrapper(getattr(current, "__wrapped__", None)):
            return None
    return found


def _take_wrappers_off(held: _Held) -> None:
    """AgentOps' CrewAI instrumentor already ran: take its wrappers off (its own
    ``uninstrument`` takes off nothing: it names the methods in a form
    OpenTelemetry's ``unwrap`` does not find)."""
    wrapped = _wrapped_by_agentops()
    if wrapped is None:
        _LOG.warning(
            "otel-crew: AgentOps' CrewAI instrumentation stays on (otel-crew was instrumented over it): "
            "CrewAI steps reach AgentOps twice; build the bridge with instrument(agentops=...) instead"
        )
        return
    for owner, name, wrapper in wrapped:
        setattr(owner, name, wrapper.__wrapped__)
    held.taken = wrapped


def _give_back(held: _Held) -> None:
    registry = held.registry
    registry.AGENTIC_LIBRARIES[_KEY] = held.entry
    for owner, name, wrapper in held.taken:
        current = vars(owner).get(name) if isinstance(owner, type) else getattr(owner, name, None)
        if current is wrapper.__wrapped__:  # untouched since: AgentOps' own wrapper goes back
            setattr(owner, name, wrapper)
    for position, instrumentor in enumerate(registry._active_instrumentors):
        if isinstance(instrumentor, CrewaiHandedOver):  # AgentOps activated CrewAI meanwhile: what it would have done
            own = registry.instrument_one(registry.InstrumentorLoader(**held.entry))
            if own is None:
                del registry._active_instrumentors[position]
            else:
                own._agentops_instrumented_package_key = _KEY
                registry._active_instrumentors[position] = own
            return


def hold(holder: object) -> None:
    """Keep AgentOps' CrewAI instrumentation off for ``holder`` (idempotent per holder)."""
    global _held
    with _lock:
        _holders.add(id(holder))
        if _held is not None:
            return
        registry = _registry()
        entry = None if registry is None else registry.AGENTIC_LIBRARIES.get(_KEY)
        if entry is None:
            return
        held = _Held(registry, entry)
        try:
            registry.AGENTIC_LIBRARIES[_KEY] = _stand_in_entry(entry)
            _take_wrappers_off(held)
        except Exception:
            registry.AGENTIC_LIBRARIES[_KEY] = entry
            _LOG.debug("otel-crew: AgentOps' CrewAI instrumentation could not be switched off", exc_info=True)
            return
        _held = held


def release(holder: object) -> None:
    """``holder`` is done; the last one out gives AgentOps its CrewAI instrumentation back."""
    global _held
    with _lock:
        _holders.discard(id(holder))
        if _holders or _held is None:
            return
        held, _held = _held, None
        try:
            _give_back(held)
        except Exception:
            _LOG.debug("otel-crew: AgentOps' CrewAI instrumentation could not be given back", exc_info=True)


def held() -> bool:
    """Whether AgentOps' CrewAI instrumentation is switched off now (tests, doctor)."""
    return _held is not None
