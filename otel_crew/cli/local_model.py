"""A deterministic, offline CrewAI model for the demo, the tests and the benchmarks.

It owns one thing: answering CrewAI's ReAct prompts without a network, the same
way every time, so that real crews really run. It can call one tool (or
delegate to a coworker) before answering, and it can be told to fail.

CrewAI's model base class differs between lines: a pydantic ``BaseLLM`` on 1.x,
a plain ``BaseLLM`` on 0.105+ and a plain ``LLM`` on 0.102. ``local_model()``
picks the right one, so callers never see the difference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["LocalModelError", "local_model"]


class LocalModelError(RuntimeError):
    """Raised by a local model told to fail: a stand-in for a provider error."""


def _last_text(messages: Any) -> str:
    if isinstance(messages, str):
        return messages
    if not messages:
        return ""
    content = messages[-1].get("content", "")
    return content if isinstance(content, str) else str(content)


def _has_acted(messages: Any) -> bool:
    """True once the conversation holds a turn of ours (a tool call was made)."""
    if isinstance(messages, str):
        return "Observation:" in messages
    return any(message.get("role") == "assistant" for message in messages)


@dataclass(frozen=True)
class _TokenUsage:
    """A usage report as CrewAI's token counter reads one (attributes, as LiteLLM's ``Usage`` has them)."""

    prompt_tokens: int
    completion_tokens: int
    prompt_tokens_details: None = None
    completion_tokens_details: None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _report_completion(model: Any, messages: Any, reply: str, usage: _TokenUsage, kwargs: dict[str, Any]) -> bool:
    """CrewAI 1.x: the started and completed events of the call, the completed one with its usage; False on 0.x."""
    try:
        from crewai.events.types.llm_events import LLMCallType
        from crewai.llms.base_llm import llm_call_context
    except ImportError:
        return False
    agent, task = kwargs.get("from_agent"), kwargs.get("from_task")
    with llm_call_context():
        model._emit_call_started_event(messages=messages, from_task=task, from_agent=agent)
        model._emit_call_completed_event(
            response=reply,
            call_type=LLMCallType.LLM_CALL,
            from_task=task,
            from_agent=agent,
            messages=messages,
            usage={"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens},
        )
    return True


class _ScriptedReplies:
    """The model's behaviour, shared by every CrewAI base class."""

    _tool_name: str | None
    _tool_input: dict[str, Any]
    _answer: str
    _failure: str | None

    def _configure(
        self,
        answer: str,
        tool_name: str | None,
        tool_input: dict[str, Any] | None,
        fail_with: str | None,
    ) -> None:
        object.__setattr__(self, "_answer", answer)
        object.__setattr__(self, "_tool_name", tool_name)
        object.__setattr__(self, "_tool_input", dict(tool_input or {}))
        object.__setattr__(self, "_failure", fail_with)

    def _reply(self, messages: Any) -> str:
        if self._failure is not None:
            raise LocalModelError(self._failure)
        if self._tool_name is not None and not _has_acted(messages):
            return (
                f"Thought: I should use {self._tool_name}.\n"
                f"Action: {self._tool_name}\n"
                f"Action Input: {json.dumps(self._tool_input)}"
            )
        digest = _last_text(messages).strip().splitlines()[-1:] or [""]
        return f"Thought: I now know the final answer\nFinal Answer: {self._answer} ({digest[0][:60]})"

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
        reply = self._reply(messages)
        self._report_usage(messages, reply, args, kwargs)
        return reply

    async def acall(self, messages: Any, *args: Any, **kwargs: Any) -> str:
        return self.call(messages, *args, **kwargs)

    def _report_usage(self, messages: Any, reply: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Report the call's tokens (an estimate, a token per four characters) the way CrewAI's own models do:
        1.x in its completion event, 0.x to the token counters among the call's callbacks."""
        usage = _TokenUsage(self.get_input_tokens_count(messages), -(-len(reply) // 4))
        if _report_completion(self, messages, reply, usage, kwargs):
            return
        callbacks = kwargs.get("callbacks", args[1] if len(args) > 1 else None) or []
        for callback in callbacks:
            if hasattr(callback, "log_success_event"):
                callback.log_success_event(kwargs={}, response_obj={"usage": usage}, start_time=0, end_time=0)

    def supports_function_calling(self) -> bool:
        return False

    def supports_stop_words(self) -> bool:
        return True

    def get_context_window_size(self) -> int:
        return 8192

    def get_input_tokens_count(self, messages: Any, *args: Any, **kwargs: Any) -> int:
        # CrewAI 1.x's fallback warns that its count is approximate; ours is
        # exactly the same estimate (a token per four characters), said quietly.
        text = messages if isinstance(messages, str) else " ".join(str(m.get("content", "")) for m in messages)
        return -(-len(text) // 4)


def _model_base() -> type:
    try:
        from crewai.llms.base_llm import BaseLLM

        return BaseLLM
    except ImportError:  # CrewAI 0.102: no BaseLLM yet, subclass LLM
        import crewai

        return crewai.LLM


def _model_class() -> type:
    class LocalModel(_ScriptedReplies, _model_base()):  # type: ignore[misc]
        """A CrewAI model that answers from a script, offline."""

    return LocalModel


_LOCAL_MODEL_CLASS: type | None = None


def local_model(
    answer: str = "done",
    *,
    tool_name: str | None = None,
    tool_input: dict[str, Any] | None = None,
    fail_with: str | None = None,
    name: str = "local/deterministic",
) -> Any:
    """Build a deterministic model for a CrewAI agent.

    ``answer`` starts every final answer. With ``tool_name`` the model first
    calls that tool (or CrewAI's delegation tool) with ``tool_input``, then
    answers. With ``fail_with`` every call raises ``LocalModelError``.
    """
    global _LOCAL_MODEL_CLASS
    if _LOCAL_MODEL_CLASS is None:
        _LOCAL_MODEL_CLASS = _model_class()
    model = _LOCAL_MODEL_CLASS(model=name)
    model._configure(answer, tool_name, tool_input, fail_with)
    return model
