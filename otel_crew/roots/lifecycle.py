"""Process lifecycle hooks (fork, exit) that never keep a processor alive.

``os.register_at_fork`` and ``atexit`` cannot be undone per object (fork) or
hold strong references (both): the hooks here hold weak methods instead.
"""

from __future__ import annotations

import atexit
import functools
import os
from collections.abc import Callable
from weakref import WeakMethod


def _call_weakly(method: WeakMethod[Callable[[], None]]) -> None:
    bound = method()
    if bound is not None:
        bound()


def on_fork_in_child(method: Callable[[], None]) -> None:
    """Call ``method`` (a bound method) in every forked child, while its object lives."""
    os.register_at_fork(after_in_child=functools.partial(_call_weakly, WeakMethod(method)))


def on_exit(method: Callable[[], None]) -> Callable[[], None]:
    """Call ``method`` (a bound method) at interpreter exit; returns the hook for ``atexit.unregister``."""
    hook = functools.partial(_call_weakly, WeakMethod(method))
    atexit.register(hook)
    return hook
