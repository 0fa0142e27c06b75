"""Instrumentation: CrewAI's methods observed as spans.

``instrumentor`` holds ``OtelCrewInstrumentor`` and the patch table (which
CrewAI method gets which wrapper). One module per CrewAI concept makes its
spans: ``crew`` (kickoffs), ``agent``, ``tool``; ``calls`` is what the
wrappers share, ``attributes`` the allow-listed extraction of attribute
values, ``carry_over`` the context carried into threads CrewAI starts bare,
``provider_order`` where the processors go in the user's provider.

May import ``otel_crew.roots`` and ``otel_crew.agentops_sessions`` (to
install the processors), and the leaves ``semconv`` and ``version``.
A new CrewAI concept is one new module here plus its rows in the patch table.
"""
