"""otel-crew: OpenTelemetry spans for CrewAI, under a root span the user owns.

Public names (stable):

- ``OtelCrewInstrumentor``: ``instrument()`` turns kickoffs, agent steps and
  tool calls into spans;
- ``workflow``: the root span of a pipeline of crews.
"""

from otel_crew.instrumentor import OtelCrewInstrumentor
from otel_crew.version import __version__
from otel_crew.workflow import workflow

__all__ = ["OtelCrewInstrumentor", "__version__", "workflow"]
