"""otel-crew: OpenTelemetry spans for CrewAI, under a root span the user owns.

Public names (stable):

- ``OtelCrewInstrumentor``: ``instrument()`` turns kickoffs, agent steps and
  tool calls into spans;
- ``workflow``: the root span of a pipeline of crews;
- ``AgentOpsSessionProcessor``: one AgentOps session per root, ended with it;
- ``UnclosedRootProcessor``: flags roots left open, ends them at shutdown;
- ``configure``: a provider from the standard OTEL_* variables, instrumented.
"""

from otel_crew.agentops_sessions.processor import AgentOpsSessionProcessor
from otel_crew.config import configure
from otel_crew.instrumentation.instrumentor import OtelCrewInstrumentor
from otel_crew.roots.unclosed import UnclosedRoot, UnclosedRootProcessor
from otel_crew.roots.workflow import workflow
from otel_crew.version import __version__

__all__ = [
    "AgentOpsSessionProcessor",
    "OtelCrewInstrumentor",
    "UnclosedRoot",
    "UnclosedRootProcessor",
    "__version__",
    "configure",
    "workflow",
]
