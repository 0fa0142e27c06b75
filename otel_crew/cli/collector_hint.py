"""How to start a collector, as ``doctor`` and ``demo`` say it when nothing
listens at the endpoint: the clone's Compose file when this otel-crew runs
from a clone and ``docker compose`` works here, else a plain instruction."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["start_collector"]

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"  # in a clone, beside otel_crew/


def _compose_works() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        done = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def start_collector() -> str:
    """One action that gets an OTLP receiver listening."""
    if COMPOSE_FILE.is_file() and _compose_works():
        return f"start one: docker compose -f {COMPOSE_FILE} up -d --wait"
    return "start an OpenTelemetry Collector (or any OTLP receiver) there"
