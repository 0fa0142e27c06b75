"""The installed version of otel-crew."""

__version__ = "0.1.0"
