"""Interleaved measurement and the report's shape.

``interleave`` runs every variant once per block, in a rotated order, and
keeps per-block means; comparisons are made within a block (paired), so slow
phases of the machine hit every variant alike.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version


@dataclass
class Variant:
    """One thing to measure: ``setup`` before a block, ``run`` n times, ``teardown`` after."""

    name: str
    run: Callable[[], object]
    setup: Callable[[], object] = lambda: None
    teardown: Callable[[], object] = lambda: None


@dataclass
class Blocks:
    """Per-block mean seconds per call, by variant name."""

    means: dict[str, list[float]] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return statistics.median(self.means[name])

    def paired_difference(self, name: str, baseline: str) -> float:
        """Median over blocks of (variant - baseline), seconds per call."""
        return statistics.median(a - b for a, b in zip(self.means[name], self.means[baseline], strict=True))

    def paired_spread(self, name: str, baseline: str) -> float:
        """Interquartile range over blocks of (variant - baseline): the noise a difference is read against."""
        differences = sorted(a - b for a, b in zip(self.means[name], self.means[baseline], strict=True))
        if len(differences) < 4:
            return float("nan")
        quartiles = statistics.quantiles(differences, n=4)
        return quartiles[2] - quartiles[0]

    def paired_ratio(self, name: str, baseline: str) -> float:
        return statistics.median(a / b for a, b in zip(self.means[name], self.means[baseline], strict=True))


@contextmanager
def collector_paused() -> Iterator[None]:
    """The garbage collector runs before, not during: its pauses (and, under
    callgrind, its millions of instructions) are lumpy noise at this scale."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def timed(run: Callable[[], object], calls: int) -> tuple[float, float]:
    """Wall and process-CPU seconds for ``calls`` runs, the collector paused."""
    with collector_paused():
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            run()
        return time.perf_counter() - wall, time.process_time() - cpu


def interleave(variants: Sequence[Variant], blocks: int, calls: int, warmup: int = 1) -> Blocks:
    result = Blocks({variant.name: [] for variant in variants})
    for block in range(blocks):
        shift = block % len(variants)
        for variant in [*variants[shift:], *variants[:shift]]:
            variant.setup()
            try:
                for _ in range(warmup):
                    variant.run()
                wall, _ = timed(variant.run, calls)
                result.means[variant.name].append(wall / calls)
            finally:
                variant.teardown()
    return result


def installed(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> Mapping[str, str]:
    return {
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "crewai": installed("crewai"),
        "opentelemetry-sdk": installed("opentelemetry-sdk"),
        "agentops": installed("agentops"),
        "otel-crew": installed("otel-crew"),
        "opentelemetry-instrumentation-crewai (OpenLLMetry)": installed("opentelemetry-instrumentation-crewai"),
        "openinference-instrumentation-crewai (Arize)": installed("openinference-instrumentation-crewai"),
    }


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def verdict(ok: bool | None) -> str:
    """None: the measurement cannot tell (a difference at or below zero is noise, not a gain)."""
    if ok is None:
        return "inconclusive"
    return "met" if ok else "**missed**"
