"""otel-crew's benchmarks, through its public API only: ``python -m benchmarks`` (method in BENCHMARKS.md)."""
