"""The ``otel-crew`` command: ``demo`` (its pipeline, crews and local model),
``doctor``, and the trace tree they print.

May import everything else in otel-crew.
"""

from otel_crew.cli.main import main

__all__ = ["main"]
