"""How every message of otel-crew tells the reader to install an extra.

otel-crew is installed from a clone of its repository (it is not on PyPI),
so a hint names the extra as pip takes it there: ``pip install ".[crewai]"``.
"""

from __future__ import annotations

__all__ = ["pip_install"]


def pip_install(extra: str) -> str:
    """The command that adds ``extra``, run in the otel-crew clone."""
    return f'pip install ".[{extra}]" in the otel-crew clone'
