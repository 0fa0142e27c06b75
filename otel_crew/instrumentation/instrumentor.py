"""``OtelCrewInstrumentor``: turns CrewAI kickoffs, agent steps and tool calls into spans.

``instrument()`` and ``uninstrument()`` are mirror images: every method that
is wrapped is recorded with the exact object that stood in the class before,
and put back as it was. ``instrument()`` is all-or-nothing: when any step
fails, what it had done is undone, one warning says why, and CrewAI runs
untouched. Unknown options are warned about, never refused (the convention of
OpenTelemetry instrumentors, whose tooling may pass more). The global tracer
provider is never set.
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
from collections.abc import Collection
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.sdk.trace import SpanProcessor
from packaging.version import Version

from otel_crew import config
from otel_crew.agentops_sessions.end_states import PAUSED_END_STATE
from otel_crew.agentops_sessions.processor import AgentOpsSessionProcessor
from otel_crew.instrumentation import baggage_guard, handoff
from otel_crew.instrumentation.agent import AgentWrappers
from otel_crew.instrumentation.carry_over import CarryOverWrappers, ContextHandoff
from otel_crew.instrumentation.celery_wiring import CeleryWiring
from otel_crew.instrumentation.crash_recovery import recover_dead_roots_into
from otel_crew.instrumentation.crew import CrewWrappers
from otel_crew.instrumentation.flow import FlowWrappers, flow_class_module
from otel_crew.instrumentation.llm import LLMWrappers
from otel_crew.instrumentation.llm_usage import LLMUsageProcessor
from otel_crew.instrumentation.patches import Patch, PatchError, Row, apply, installed_crewai, report_missing
from otel_crew.instrumentation.provider_order import AwaitedProvider, install_first, uninstall
from otel_crew.instrumentation.tool import ToolWrappers
from otel_crew.roots import workflow as workflow_module
from otel_crew.roots.unclosed import UnclosedRootProcessor
from otel_crew.semconv import SCHEMA_URL
from otel_crew.version import __version__

__all__ = ["SUPPORTED_CREWAI", "OtelCrewInstrumentor"]

_LOG = logging.getLogger(__name__)

SUPPORTED_CREWAI = "crewai >= 0.102.0, < 2"

_OUR_OPTIONS = frozenset(
    {
        "tracer_provider",
        "meter_provider",
        "capture_content",
        "unclosed_roots",
        "agentops",
        "auto_end_session",
        "end_states",
        "paused_end_state",
        "celery",
        "llm_spans",
    }
)
_AGENTOPS_MODES = ("auto", "on", "off")
_CELERY_MODES = ("auto", "off")
# Keywords OpenTelemetry's own tooling (opentelemetry-instrument, distros) passes.
_TOOLING_OPTIONS = frozenset(
    {"skip_dep_check", "raise_exception_on_conflict", "logger_provider", "event_logger_provider"}
)

# Rows of the table that older supported CrewAI lines lack, with the first
# line known to have them: their absence there is said at INFO, not WARNING.
_ADDED_IN = {
    "Crew.akickoff": "1.0",
    "Crew.akickoff_for_each": "1.0",
    "Agent.aexecute_task": "1.0",
    "BaseTool.arun": "1.0",
    "Tool.arun": "1.0",
    "Agent._execute_with_timeout": "0.130",
    "Agent._execute_without_timeout": "0.130",
    "Agent.kickoff": "0.130",
    "Agent.kickoff_async": "0.130",
    "Flow.akickoff": "1.0",
    "Flow.resume_async": "1.0",
}

CARRY_OVER_BEFORE = Version("1.11")
"""From this CrewAI line on, CrewAI copies ``contextvars`` into the threads it
starts, so the carry-over rows stay out of the table: nothing to carry, and
CrewAI's own tests read those methods' source, which must be CrewAI's."""


def _method_table(tracer: trace.Tracer, capture_content: bool, llms: LLMWrappers) -> list[Row]:
    """(module, class, method, wrapper) for every method we observe, with the
    context carry-over rows only where CrewAI does not carry the context itself
    (before ``CARRY_OVER_BEFORE``). A method a CrewAI version lacks is skipped,
    and named (patches.report_missing)."""
    handoff = ContextHandoff()
    crews = CrewWrappers(tracer, capture_content, handoff)
    agents = AgentWrappers(tracer, capture_content)
    tools = ToolWrappers(tracer, capture_content)
    carry = CarryOverWrappers(handoff)
    flows = FlowWrappers(tracer, capture_content)
    flow = flow_class_module()
    entry = crews.kickoff_entry
    task_at_1 = (1, "task")
    installed = installed_crewai()
    carry_over: list[Row] = []
    if installed is None or installed < CARRY_OVER_BEFORE:
        carry_over = [
            ("crewai", "Agent", "_execute_with_timeout", carry.leave_context(task_at_1)),
            ("crewai", "Agent", "_execute_without_timeout", carry.take_context(task_at_1)),
            ("crewai", "Task", "execute_async", carry.leave_context(None)),
            ("crewai", "Task", "_execute_task_async", carry.take_context(None)),
        ]
    return [
        ("crewai", "Crew", "kickoff", crews.kickoff),
        ("crewai", "Crew", "akickoff", crews.akickoff),
        ("crewai", "Crew", "kickoff_async", entry("kickoff_async", is_async=True)),
        ("crewai", "Crew", "kickoff_for_each", entry("kickoff_for_each", is_async=False)),
        ("crewai", "Crew", "kickoff_for_each_async", entry("kickoff_for_each_async", is_async=True)),
        ("crewai", "Crew", "akickoff_for_each", entry("akickoff_for_each", is_async=True)),
        ("crewai", "Agent", "execute_task", agents.execute_task),
        ("crewai", "Agent", "aexecute_task", agents.aexecute_task),
        ("crewai", "Agent", "kickoff", agents.kickoff),
        ("crewai", "Agent", "kickoff_async", agents.kickoff_async),
        *carry_over,
        ("crewai.tools.base_tool", "BaseTool", "run", tools.run_tool),
        ("crewai.tools.base_tool", "BaseTool", "arun", tools.arun_tool),
        ("crewai.tools.base_tool", "Tool", "run", tools.run_tool),
        ("crewai.tools.base_tool", "Tool", "arun", tools.arun_tool),
        ("crewai.tools.structured_tool", "CrewStructuredTool", "invoke", tools.run_tool),
        ("crewai.tools.structured_tool", "CrewStructuredTool", "ainvoke", tools.arun_tool),
        (flow, "Flow", "kickoff", flows.kickoff),
        (flow, "Flow", "kickoff_async", flows.kickoff_async),
        (flow, "Flow", "akickoff", flows.kickoff_async),
        (flow, "Flow", "resume_async", flows.resume_async),
        (flow, "Flow", "_execute_method", flows.execute_method),
        *llms.rows(),
    ]


class _UndoneError(Exception):
    """instrument() failed part way; it undid what it had done and said why."""


def _warn_unknown_options(options: dict[str, Any]) -> None:
    known = sorted(_OUR_OPTIONS | _TOOLING_OPTIONS)
    for name in sorted(set(options) - _OUR_OPTIONS - _TOOLING_OPTIONS):
        closest = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {closest[0]!r}?)" if closest else f"; known options: {', '.join(sorted(_OUR_OPTIONS))}"
        _LOG.warning("otel-crew: instrument() ignores the unknown option %r%s", name, hint)


def _check_options(options: dict[str, Any]) -> None:
    _warn_unknown_options(options)
    capture = options.get("capture_content")
    if capture is not None and not isinstance(capture, bool):
        raise TypeError(f"instrument(capture_content=...): expected bool or None, got {type(capture).__name__}")
    if not isinstance(options.get("llm_spans", True), bool):
        raise TypeError(f"instrument(llm_spans=...): expected bool, got {options['llm_spans']!r}")
    unclosed = options.get("unclosed_roots", True)
    if not isinstance(unclosed, (bool, UnclosedRootProcessor)):
        raise TypeError(f"instrument(unclosed_roots=...): expected bool or UnclosedRootProcessor, got {unclosed!r}")
    mode = options.get("agentops", "auto")
    if not (mode in _AGENTOPS_MODES or isinstance(mode, AgentOpsSessionProcessor)):
        raise ValueError(
            f"instrument(agentops=...): expected one of {', '.join(_AGENTOPS_MODES)} "
            f"or an AgentOpsSessionProcessor, got {mode!r}"
        )
    celery = options.get("celery", "auto")
    if celery not in _CELERY_MODES:
        raise ValueError(f"instrument(celery=...): expected one of {', '.join(_CELERY_MODES)}, got {celery!r}")


def _agentops_importable() -> bool:
    return importlib.util.find_spec("agentops") is not None


def _processors(options: dict[str, Any]) -> list[SpanProcessor]:
    """The processors instrument() installs, in the order they should see spans."""
    meter_provider = options.get("meter_provider")
    chosen: list[SpanProcessor] = []
    unclosed = options.get("unclosed_roots", True)
    if isinstance(unclosed, UnclosedRootProcessor):
        chosen.append(unclosed)
    elif unclosed:
        chosen.append(UnclosedRootProcessor(meter_provider=meter_provider))
    mode = options.get("agentops", "auto")
    if isinstance(mode, AgentOpsSessionProcessor):
        chosen.append(mode)
    elif mode == "on" or (mode == "auto" and _agentops_importable()):
        bridge = AgentOpsSessionProcessor(
            auto_end_session=options.get("auto_end_session", True),
            end_states=options.get("end_states"),
            paused_end_state=options.get("paused_end_state", PAUSED_END_STATE),
            meter_provider=meter_provider,
        )
        if mode == "auto":  # AgentOps installed but unused is a normal state then
            bridge.uninitialised_log_level = logging.DEBUG
        chosen.append(bridge)
    return chosen


class OtelCrewInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """OpenTelemetry instrumentation for CrewAI.

    Options of ``instrument()`` (all optional; the README has the table):
    ``tracer_provider`` and ``meter_provider`` (default: the global ones),
    ``capture_content`` (default: from
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``), ``unclosed_roots``
    (True: an ``UnclosedRootProcessor`` with its defaults; False; or your
    own), ``agentops`` ("auto": the session bridge when AgentOps is
    installed; "on"; "off"; or your own ``AgentOpsSessionProcessor``),
    ``auto_end_session``, ``end_states`` and ``paused_end_state`` (for the
    bridge it builds), ``llm_spans`` (default True: an inference span per LLM
    call that no provider instrumentation records; False: none of otel-crew's,
    token totals kept), ``celery`` ("auto": Celery's instrumentor on this
    provider when it is installed and not on yet; "off").
    """

    _patches: list[Patch]
    _processors: list[SpanProcessor]
    _provider: trace.TracerProvider
    _celery: CeleryWiring
    _asked_for: trace.TracerProvider | None = None  # the tracer_provider option of the instrument() in force

    def instrumentation_dependencies(self) -> Collection[str]:
        return (SUPPORTED_CREWAI,)

    def instrument(self, **options: Any) -> Any:
        _check_options(options)
        if self.is_instrumented_by_opentelemetry:
            self._refuse_second(options.get("tracer_provider"))
            return None
        try:
            return super().instrument(**options)
        except _UndoneError:
            return None

    def _refuse_second(self, provider: trace.TracerProvider | None) -> None:
        """A second instrument() changes nothing; one line says so, and how to switch providers."""
        if provider is self._asked_for:
            _LOG.debug("otel-crew: instrument(): already instrumented into this tracer provider; nothing to do")
            return
        _LOG.warning(
            "otel-crew: instrument(): CrewAI is already instrumented into another tracer provider and its spans "
            "keep going there; call OtelCrewInstrumentor().uninstrument() first to switch to this one"
        )

    def _instrument(self, **options: Any) -> None:
        provider = options.get("tracer_provider")
        self._asked_for = provider
        self._provider = provider if provider is not None else trace.get_tracer_provider()
        self._processors = []
        self._patches = []
        self._celery = CeleryWiring()
        try:
            self._install(provider, options)
        except Exception as error:
            self._uninstrument()
            failed = f"wrapping {error}" if isinstance(error, PatchError) else "installing"
            cause = error.__cause__ if isinstance(error, PatchError) else error
            _LOG.warning(
                "otel-crew: instrument() failed %s (%s: %s); everything it had done is undone and CrewAI runs untraced",
                failed,
                type(cause).__qualname__,
                cause,
            )
            raise _UndoneError from error
        _LOG.debug("otel-crew: instrumented %d methods", len(self._patches))
        recover_dead_roots_into(self._provider, any(isinstance(p, AgentOpsSessionProcessor) for p in self._processors))

    def _install(self, provider: trace.TracerProvider | None, options: dict[str, Any]) -> None:
        """Each step records what it did before the next starts, for _uninstrument to undo."""
        usage = LLMUsageProcessor()
        processors = [*_processors(options), usage]
        for processor in processors:  # before CrewAI is wrapped: AgentOps' own CrewAI wrappers come off first
            if isinstance(processor, AgentOpsSessionProcessor):
                processor.activate()
        if isinstance(self._provider, trace.ProxyTracerProvider):  # no SDK provider yet: wait for one
            self._provider = provider = AwaitedProvider(processors)
            self._processors = processors
        else:
            for processor in reversed(processors):
                install_first(self._provider, processor)
                self._processors.insert(0, processor)
        capture = options.get("capture_content")
        capture = config.capture_content() if capture is None else capture
        tracer = trace.get_tracer("otel_crew", __version__, tracer_provider=provider, schema_url=SCHEMA_URL)
        llms = LLMWrappers(
            tracer, options.get("meter_provider"), capture, usage, options.get("llm_spans", True), self._patches
        )
        missing = apply(_method_table(tracer, capture, llms), self._patches)
        llms.wrap_existing()
        self._patches.append(baggage_guard.install())
        self._patches.append(handoff.install())
        workflow_module.use_tracer_provider(provider)
        if options.get("celery", "auto") == "auto":
            self._celery.wire(provider, self._provider)
        report_missing(missing, _ADDED_IN)

    def _uninstrument(self, **options: Any) -> None:
        self._celery.unwire()
        workflow_module.use_tracer_provider(None)
        for patch in reversed(self._patches):
            patch.undo()
        self._patches = []
        for processor in self._processors:
            uninstall(self._provider, processor)
            processor.shutdown()
        self._processors = []
