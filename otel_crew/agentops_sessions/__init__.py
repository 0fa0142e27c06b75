"""AgentOps sessions: one per root, ended once when the root ends.

``processor`` is the ``AgentOpsSessionProcessor``; ``auto_end_guards`` keep
CrewAI from ending the session itself inside a root; ``export_repair`` makes
AgentOps' exporter work on OpenTelemetry 1.45+; ``end_states`` maps a root's
outcome to an AgentOps end state.

May import ``otel_crew.roots`` and the leaves ``semconv`` and ``version``.
"""
