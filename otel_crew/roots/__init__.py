"""Roots: what a pipeline's trace and session belong to.

``definition`` is the one definition of a root and the index from open spans
to their root; ``scope`` runs work inside a span (shared by ``workflow()`` and
the instrumentation's wrappers); ``workflow`` is the user-owned root;
``unclosed`` is the processor that flags roots left open; ``lifecycle`` holds
fork and exit hooks that never keep a processor alive.

Imports nothing of otel-crew's but the leaves ``semconv`` and ``version``.
"""
