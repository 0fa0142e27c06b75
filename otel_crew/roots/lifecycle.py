"""Process lifecycle hooks (fork, exit) that never keep a processor alive.

``os.register_at_fork`` cannot be undone, and ``atexit`` holds strong
references: the hooks here hold weak methods instead. Fork has one hook for
the whole process, registered at import, over a list of weak methods that
forgets dead ones, so constructing processors adds nothing global.
"""

from __future__ import annotations

import atexit
import functools
import os
import threading
from collections.abc import Callable
from weakref import WeakMethod

_in_forked_child: list[WeakMethod[Callable[[], None]]] = []
_lock = threading.Lock()


def _call_weakly(method: WeakMethod[Callable[[], None]]) -> None:
    bound = method()
    if bound is not None:
        bound()


def _after_fork_in_child() -> None:
    for method in list(_in_forked_child):
        _call_weakly(method)


def on_fork_in_child(method: Callable[[], None]) -> None:
    """Call ``method`` (a bound method) in every forked child, while its object lives."""
    with _lock:
        _in_forked_child[:] = [alive for alive in _in_forked_child if alive() is not None]
        _in_forked_child.append(WeakMethod(method))


def fork_hooks() -> int:
    """How many fork hooks are held (tests)."""
    return len(_in_forked_child)


def on_exit(method: Callable[[], None]) -> Callable[[], None]:
    """Call ``method`` (a bound method) at interpreter exit; returns the hook for ``atexit.unregister``."""
    hook = functools.partial(_call_weakly, WeakMethod(method))
    atexit.register(hook)
    return hook


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
