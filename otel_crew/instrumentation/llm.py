"""LLM calls: one ``chat {model}`` inference span per call CrewAI makes, with its tokens.

Every CrewAI LLM is a class with its own ``call`` (and often ``acall``): on 1.x ``BaseLLM``'s subclasses
(the native providers such as ``OpenAICompletion`` and ``AnthropicCompletion``, the LiteLLM-backed
``crewai.LLM``, and the user's own), on 0.102 ``crewai.LLM``. Each such method is wrapped where the class
defines it; classes made later (CrewAI imports its native providers on first use) are wrapped as they are
made, through ``BaseLLM.__init_subclass__``. The wrapper is outermost, so CrewAI's own retry runs inside
it, unchanged, and one call is one span. A call made inside another under the same parent span (a
subclass calling ``super().call``) is the same call; a tool run inside a call is not part of it
(``llm_usage.outside_llm_call``).

The span is made when the call ends, backdated to its start, and only if no provider instrumentation
(``opentelemetry-instrumentation-genai-openai``, openai-v2, OpenLLMetry's, ...) started an inference span
for it on the same provider (``llm_usage.LLMCall.recorded_elsewhere``): decided per call, nothing to
configure. Its tokens count into the agent, workflow and root totals either way.

Where the facts come from: the model and provider from the LLM object (an allow-list: never its key or
``base_url``); usage, finish reason and response id from CrewAI's own completion report
(``BaseLLM._emit_call_completed_event``, 1.x) or from its token counter's report (``TokenCalcHandler``,
0.x, which CrewAI calls on the calling thread with the call's usage).
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from otel_crew.instrumentation import attributes as attrs
from otel_crew.instrumentation.calls import Wrapped, call_arg
from otel_crew.instrumentation.llm_usage import LLMCall, LLMUsageProcessor, Usage, active_call
from otel_crew.instrumentation.patches import Patch, Row, stand_in
from otel_crew.roots.scope import error_type, own_parent_context, settle_status
from otel_crew.semconv import (
    ERROR_TYPE,
    GEN_AI_CLIENT_OPERATION_DURATION,
    GEN_AI_CLIENT_TOKEN_USAGE,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OPERATION_NAME,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_TOKEN_TYPE,
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    OPERATION_CHAT,
    SCHEMA_URL,
    TOKEN_TYPE_INPUT,
    TOKEN_TYPE_OUTPUT,
)
from otel_crew.version import __version__

__all__ = ["LLMWrappers", "usage_from"]

_LOG = logging.getLogger(__name__)

_CALL_METHODS = ("call", "acall")
_BASE_LLM_MODULE = "crewai.llms.base_llm"

# Names providers give each count, in CrewAI's own normalisation order (OpenAI, Anthropic, Gemini).
_INPUT_KEYS = ("prompt_tokens", "input_tokens", "prompt_token_count")
_OUTPUT_KEYS = ("completion_tokens", "output_tokens", "candidates_token_count")
_CACHE_READ_KEYS = ("cached_prompt_tokens", "cache_read_input_tokens", "cached_tokens")
_CACHE_CREATION_KEYS = ("cache_creation_input_tokens", "cache_creation_tokens")
_REASONING_KEYS = ("reasoning_tokens",)


def _field(source: Any, name: str) -> Any:
    return source.get(name) if isinstance(source, dict) else getattr(source, name, None)


def _count(source: Any, names: tuple[str, ...]) -> int:
    for name in names:
        value = _field(source, name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0


def usage_from(source: Any) -> Usage | None:
    """A provider's usage report (a dict or an SDK object, any of the usual key names) as ``Usage``;
    None when it has no token count."""
    if source is None:
        return None
    usage = Usage(
        input_tokens=_count(source, _INPUT_KEYS),
        output_tokens=_count(source, _OUTPUT_KEYS),
        cache_read_input_tokens=_count(source, _CACHE_READ_KEYS)
        or _count(_field(source, "prompt_tokens_details"), ("cached_tokens",)),
        cache_creation_input_tokens=_count(source, _CACHE_CREATION_KEYS),
        reasoning_output_tokens=_count(source, _REASONING_KEYS)
        or _count(_field(source, "completion_tokens_details"), ("reasoning_tokens",)),
    )
    return usage if usage.input_tokens or usage.output_tokens else None


def _model_and_provider(llm: Any) -> tuple[str, str | None]:
    model = getattr(llm, "model", None)
    model = model if isinstance(model, str) and model else "unknown"
    prefix, slash, rest = model.partition("/")
    provider = getattr(llm, "provider", None)
    if not (isinstance(provider, str) and provider):
        provider = prefix if slash else None
    return (rest if slash else model), provider


def request_attributes(llm: Any) -> dict[str, AttributeValue | None]:
    model, provider = _model_and_provider(llm)
    return {GEN_AI_OPERATION_NAME: OPERATION_CHAT, GEN_AI_REQUEST_MODEL: model, GEN_AI_PROVIDER_NAME: provider}


def _usage_attributes(usage: Usage) -> dict[str, AttributeValue | None]:
    return {
        GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens,
        GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens,
        GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: usage.cache_read_input_tokens or None,
        GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: usage.cache_creation_input_tokens or None,
        GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: usage.reasoning_output_tokens or None,
    }


def _llm_classes(root: type) -> Iterator[type]:
    """``root`` and every class below it, each once."""
    seen: set[type] = set()
    pending = [root]
    while pending:
        cls = pending.pop()
        if cls not in seen:
            seen.add(cls)
            yield cls
            pending.extend(cls.__subclasses__())


def _is_litellm(llm: Any) -> bool:
    """CrewAI 1.x's LiteLLM-backed ``LLM`` (the native providers say False)."""
    return getattr(llm, "is_litellm", False) is True


def _reports_completions() -> bool:
    try:
        base = importlib.import_module(_BASE_LLM_MODULE)
    except ImportError:
        return False
    return hasattr(getattr(base, "BaseLLM", None), "_emit_call_completed_event")


def _llm_roots() -> list[type]:
    """CrewAI's LLM base classes on this line: ``BaseLLM`` (0.130+) and ``LLM``."""
    roots: list[type] = []
    for module_name, class_name in ((_BASE_LLM_MODULE, "BaseLLM"), ("crewai.llm", "LLM")):
        try:
            owner = getattr(importlib.import_module(module_name), class_name, None)
        except ImportError:
            continue
        if isinstance(owner, type):
            roots.append(owner)
    return roots


class _AddedPatch(Patch):
    """A method put on a class that only inherited it: undone by taking it away again."""

    def undo(self) -> None:
        delattr(self.owner, self.name)


def _existing_llm_classes() -> list[type]:
    found: dict[type, None] = {}
    for root in _llm_roots():
        found.update(dict.fromkeys(_llm_classes(root)))
    return list(found)


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


@dataclass
class _Finished:
    """How a call ended."""

    result: Any = None
    error: BaseException | None = None
    ended_ns: int = 0


@dataclass
class LLMWrappers:
    """The LLM wrappers, bound to one tracer, meter, content policy and usage processor.

    ``make_spans=False`` keeps the totals and makes no inference span of otel-crew's own.
    ``patches`` is the instrumentor's undo list: classes wrapped after ``instrument()`` go there too."""

    tracer: trace.Tracer
    meter_provider: metrics.MeterProvider | None
    capture_content: bool
    usage: LLMUsageProcessor
    make_spans: bool
    patches: list[Patch]
    _wrapped: set[type] = field(default_factory=set)

    def __post_init__(self) -> None:
        meter = metrics.get_meter("otel_crew", __version__, self.meter_provider, schema_url=SCHEMA_URL)
        self._tokens = meter.create_histogram(
            GEN_AI_CLIENT_TOKEN_USAGE, unit="{token}", description="Tokens used per LLM call, by type"
        )
        self._duration = meter.create_histogram(
            GEN_AI_CLIENT_OPERATION_DURATION, unit="s", description="Duration of an LLM call"
        )

    # -- the patch table's rows, and the classes wrapped outside it ---------------------------------

    def rows(self) -> list[Row]:
        """CrewAI 1.x's native providers report each call's usage in their completion report; 0.x only to
        its token counter (which 1.x's LiteLLM path also feeds, so there it is not read: a call counts once).
        1.x's LiteLLM-backed ``LLM`` has a completion report of its own (``_handle_emit_call_events``), made
        for text replies only: its usage comes from the one report every reply makes, to the LLM's own
        counter (``_track_token_usage_internal``), and only the finish reason and response id from the other."""
        if _reports_completions():
            return [
                (_BASE_LLM_MODULE, "BaseLLM", "__init_subclass__", self.subclass_made),
                (_BASE_LLM_MODULE, "BaseLLM", "_emit_call_completed_event", self.completion_reported),
                (_BASE_LLM_MODULE, "BaseLLM", "_track_token_usage_internal", self.litellm_usage_tracked),
                ("crewai.llm", "LLM", "_handle_emit_call_events", self.completion_reported),
            ]
        counter = "crewai.utilities.token_counter_callback"
        return [(counter, "TokenCalcHandler", "log_success_event", self.tokens_reported)]

    def wrap_existing(self) -> None:
        """Wrap ``call``/``acall`` of every CrewAI LLM class there is now, and of those made later: on lines
        whose base class has no ``__init_subclass__`` of its own (0.130, 0.102), through one put there."""
        for cls in _existing_llm_classes():
            self._wrap_class(cls)
        roots = _llm_roots()
        for root in roots:
            if "__init_subclass__" in vars(root) or any(
                other is not root and issubclass(root, other) for other in roots
            ):
                continue  # CrewAI's own, wrapped by the table; or a base above it gets the hook
            root.__init_subclass__ = classmethod(self._subclass_hook(root))  # type: ignore[assignment]
            self.patches.append(_AddedPatch(root, "__init_subclass__", None))

    def _subclass_hook(self, root: type) -> Any:
        def made(cls: type, **kwargs: Any) -> None:
            super(root, cls).__init_subclass__(**kwargs)  # type: ignore[arg-type]
            self.subclass_made(_nothing, cls, (), {})

        return made

    def _wrap_class(self, cls: type) -> None:
        """Wrap the class's own ``call``/``acall``, or one it takes from a class that is no CrewAI LLM (a
        mixin: then the wrapper is put on this class, and taken away at undo)."""
        if cls in self._wrapped or cls.__module__ == _BASE_LLM_MODULE:  # BaseLLM's own are abstract
            return
        self._wrapped.add(cls)
        roots = tuple(_llm_roots())
        for name in _CALL_METHODS:
            owner = next((base for base in cls.__mro__ if name in vars(base)), None)
            if owner is None or (owner is not cls and issubclass(owner, roots)):
                continue  # none, or an LLM class's own, wrapped there
            original = vars(owner)[name]
            if not callable(original) or getattr(original, "__isabstractmethod__", False):
                continue
            setattr(cls, name, stand_in(original, self.acall if name == "acall" else self.call))
            self.patches.append(Patch(cls, name, original) if owner is cls else _AddedPatch(cls, name, original))

    def subclass_made(self, wrapped: Wrapped, cls: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        result = wrapped(*args, **kwargs)  # CrewAI's own (1.x: its retry wrapper goes in first, ours outside)
        try:
            self._wrap_class(cls)
        except Exception:
            _LOG.debug("otel-crew: could not wrap the LLM class %r", cls, exc_info=True)
        return result

    # -- what CrewAI reports during a call -----------------------------------------------------------

    def completion_reported(self, wrapped: Wrapped, llm: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = active_call.get()
        if call is not None:
            try:
                self._note_completion(call, kwargs, with_usage=not _is_litellm(llm))
            except Exception:
                _LOG.debug("otel-crew: could not read an LLM completion report", exc_info=True)
        return wrapped(*args, **kwargs)

    def litellm_usage_tracked(self, wrapped: Wrapped, llm: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = active_call.get()
        if call is not None and _is_litellm(llm):
            try:
                usage = usage_from(call_arg(args, kwargs, 0, "usage_data"))
                if usage is not None:
                    call.add_usage(usage)
            except Exception:
                _LOG.debug("otel-crew: could not read a LiteLLM usage report", exc_info=True)
        return wrapped(*args, **kwargs)

    @staticmethod
    def _note_completion(call: LLMCall, kwargs: dict[str, Any], with_usage: bool) -> None:
        usage = usage_from(kwargs.get("usage")) if with_usage else None
        if usage is not None:
            call.add_usage(usage)
        reason = kwargs.get("finish_reason")
        if isinstance(reason, str) and reason:
            call.finish_reasons.append(reason)
        response_id = kwargs.get("response_id")
        if isinstance(response_id, str) and response_id:
            call.response_id = response_id

    def tokens_reported(self, wrapped: Wrapped, handler: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = active_call.get()
        if call is not None:
            try:
                response = call_arg(args, kwargs, 1, "response_obj")
                usage = usage_from(_field(response, "usage"))
                if usage is not None:
                    call.add_usage(usage)
            except Exception:
                _LOG.debug("otel-crew: could not read an LLM usage report", exc_info=True)
        return wrapped(*args, **kwargs)

    # -- the call itself -----------------------------------------------------------------------------

    def _begin(self) -> LLMCall | None:
        """A new call record, or None when this call is not to be observed (nested, or switched off)."""
        if not is_instrumentation_enabled():
            return None
        parent_context = own_parent_context(self.tracer, None)
        parent_span_id = trace.get_current_span(parent_context).get_span_context().span_id
        if active_call.get() is not None:  # a call within a call (a subclass calling super().call): the same
            return None
        return LLMCall(parent_context, parent_span_id)

    def call(self, wrapped: Wrapped, llm: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = self._begin()
        if call is None:
            return wrapped(*args, **kwargs)
        with _Observing(self, call, llm, args, kwargs) as finished:
            finished.result = wrapped(*args, **kwargs)
        return finished.result

    async def acall(self, wrapped: Wrapped, llm: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = self._begin()
        if call is None:
            return await wrapped(*args, **kwargs)
        with _Observing(self, call, llm, args, kwargs) as finished:
            finished.result = await wrapped(*args, **kwargs)
        return finished.result

    def _finish(self, call: LLMCall, llm: Any, args: tuple[Any, ...], kwargs: dict[str, Any], end: _Finished) -> None:
        end.ended_ns = time.time_ns()
        try:
            if call.usage is not None:
                self.usage.count(call.parent_span_id, call.usage)
            if self.make_spans and not call.recorded_elsewhere():
                self._record(call, llm, call_arg(args, kwargs, 0, "messages"), end)
        except Exception:  # telemetry must never reach the call
            _LOG.debug("otel-crew: could not record an LLM call", exc_info=True)

    def _record(self, call: LLMCall, llm: Any, messages: Any, end: _Finished) -> None:
        attributes = attrs.safe_attributes(request_attributes, llm)
        if call.usage is not None:
            attributes.update(attrs.safe_attributes(_usage_attributes, call.usage))
        if call.finish_reasons:
            attributes[GEN_AI_RESPONSE_FINISH_REASONS] = tuple(call.finish_reasons)
        if call.response_id is not None:
            attributes[GEN_AI_RESPONSE_ID] = call.response_id
        if self.capture_content:
            attributes.update(attrs.safe_attributes(_content_attributes, messages, end.result))
        span = self.tracer.start_span(
            f"chat {attributes.get(GEN_AI_REQUEST_MODEL, 'unknown')}",
            context=call.parent_context,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=call.started_ns,
        )
        settle_status(span, end.error)
        span.end(end_time=end.ended_ns)
        self._record_metrics(call, attributes, end)

    def _record_metrics(self, call: LLMCall, span_attributes: dict[str, AttributeValue], end: _Finished) -> None:
        keys = (GEN_AI_OPERATION_NAME, GEN_AI_PROVIDER_NAME, GEN_AI_REQUEST_MODEL)
        common: dict[str, AttributeValue] = {key: span_attributes[key] for key in keys if key in span_attributes}
        if end.error is not None:
            common[ERROR_TYPE] = error_type(end.error)
        self._duration.record((end.ended_ns - call.started_ns) / 1e9, common)
        if call.usage is not None:
            self._tokens.record(call.usage.input_tokens, {**common, GEN_AI_TOKEN_TYPE: TOKEN_TYPE_INPUT})
            self._tokens.record(call.usage.output_tokens, {**common, GEN_AI_TOKEN_TYPE: TOKEN_TYPE_OUTPUT})


class _Observing:
    """``with _Observing(...) as finished:`` runs one call as the active one, and records it however it
    leaves; its exception passes through untouched."""

    __slots__ = ("_args", "_call", "_finished", "_kwargs", "_llm", "_token", "_wrappers")

    def __init__(
        self, wrappers: LLMWrappers, call: LLMCall, llm: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._wrappers, self._call, self._llm, self._args, self._kwargs = wrappers, call, llm, args, kwargs
        self._finished = _Finished()

    def __enter__(self) -> _Finished:
        self._token = active_call.set(self._call)
        return self._finished

    def __exit__(self, exc_type: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        active_call.reset(self._token)
        self._finished.error = error
        self._wrappers._finish(self._call, self._llm, self._args, self._kwargs, self._finished)


def _content_attributes(messages: Any, result: Any) -> dict[str, AttributeValue | None]:
    return {
        GEN_AI_INPUT_MESSAGES: attrs.content_text(messages),
        GEN_AI_OUTPUT_MESSAGES: attrs.content_text(result) if result is not None else None,
    }
