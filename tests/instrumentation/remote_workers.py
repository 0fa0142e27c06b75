"""The other side of the scaling-out tests: a Celery app on Celery's filesystem broker, its tasks, and the
per-process set-up docs/scaling-out.md prescribes (run by ``worker_process_init`` in each prefork child, and
as the initializer of a process pool).

Everything a worker needs comes through its environment: the broker's folder, the OTLP receiver's address,
the state directory, and (from conftest) the AgentOps stand-in's address.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import task_postrun, worker_process_init

FOLDER = "OTEL_CREW_TEST_CELERY_DIR"
OTLP_URL = "OTEL_CREW_TEST_OTLP_URL"
STEP_SECONDS = 0.25

app = Celery("remote_workers")


def configure(folder: str) -> Celery:
    """Point the app at a filesystem broker and a file result backend under ``folder``."""
    base = Path(folder)
    queues = {name: base / name for name in ("queue", "processed", "control", "results")}
    for path in queues.values():
        path.mkdir(parents=True, exist_ok=True)
    app.conf.update(
        broker_url="filesystem://",
        broker_transport_options={
            "data_folder_in": str(queues["queue"]),
            "data_folder_out": str(queues["queue"]),
            "processed_folder": str(queues["processed"]),
            "control_folder": str(queues["control"]),
            "polling_interval": 0.1,
        },
        result_backend=f"file://{queues['results']}",
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_proc_alive_timeout=120,  # a new prefork child imports CrewAI in worker_process_init: slow here
        broker_connection_retry_on_startup=True,
    )
    return app


if FOLDER in os.environ:
    configure(os.environ[FOLDER])

_provider: Any = None


def set_up_process() -> None:
    """What each worker process runs once: the documented setup (AgentOps first, then otel-crew on the
    process's own provider, which also wires Celery's instrumentor onto it)."""
    global _provider
    import agentops
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from otel_crew import OtelCrewInstrumentor

    agentops.init(auto_start_session=False, instrument_llm_calls=False)
    _provider = TracerProvider(resource=Resource({"service.name": "worker", "process.pid": os.getpid()}))
    _provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{os.environ[OTLP_URL]}/v1/traces")))
    OtelCrewInstrumentor().instrument(tracer_provider=_provider, agentops="on")
    task_postrun.connect(_after_run, weak=False)  # after Celery's instrumentor's receiver, which ends run/
    if FOLDER in os.environ:  # say this process is ready (the test waits for every worker process)
        Path(os.environ[FOLDER], f"ready-{os.getpid()}").touch()


@worker_process_init.connect
def _worker_process_init(**_: Any) -> None:
    set_up_process()


def _flush() -> None:
    """Send what this process has: any session it wrongly opened reaches the stand-in now."""
    from agentops.sdk.core import tracer

    _provider.force_flush()
    if tracer.provider is not None:
        tracer.provider.force_flush()


def _after_run(task_id: str, **_: Any) -> None:
    """Once the task's ``run/`` span has ended: flush, then say the task is over (a file the test waits on)."""
    _flush()
    Path(os.environ[FOLDER], f"postrun-{task_id}").touch()


def work(crew_name: str, seconds: float) -> dict[str, Any]:
    """A crew, then steps (one span each) until ``seconds`` have passed: work that reports activity."""
    from opentelemetry import trace

    from otel_crew.cli.demo_crews import research_crew

    started = time.monotonic()
    research_crew(crew_name).kickoff(inputs={"topic": crew_name})
    tracer = trace.get_tracer("remote_workers", tracer_provider=_provider)
    while time.monotonic() - started < seconds:
        with tracer.start_as_current_span("step"):
            time.sleep(STEP_SECONDS)
    return {"pid": os.getpid(), "elapsed": time.monotonic() - started}


@app.task(name="remote_workers.crew")
def crew_task(crew_name: str, seconds: float = 0.0) -> dict[str, Any]:
    return work(crew_name, seconds)


@app.task(name="remote_workers.failing")
def failing_task() -> None:
    from otel_crew.cli.demo_crews import failing_crew

    failing_crew("remote-failing").kickoff(inputs={"topic": "failure"})


@app.task(name="remote_workers.hang")
def hang_task(pid_file: str, limit: float) -> None:
    """Says its pid, then works on until killed (at most ``limit`` seconds, so a test that fails ends)."""
    Path(pid_file).write_text(str(os.getpid()))
    work("hanging", limit)


def pool_part(carrier: Mapping[str, str], crew_name: str, seconds: float) -> dict[str, Any]:
    """A process pool's task: the caller's context extracted by hand, the work under it."""
    from opentelemetry import propagate, trace

    tracer = trace.get_tracer("remote_workers", tracer_provider=_provider)
    context = propagate.extract(dict(carrier))
    with tracer.start_as_current_span(f"pool part {crew_name}", context=context, kind=trace.SpanKind.CONSUMER):
        done = work(crew_name, seconds)
    _flush()
    return done


@app.task(name="remote_workers.ping")
def ping() -> int:
    return os.getpid()
