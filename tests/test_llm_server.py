"""The loopback LLM server answers the real OpenAI and Anthropic SDKs as their services would."""

from __future__ import annotations

import openai
import pytest
from llm_server import Failure, LLMServer, Malformed, Text, ToolCall, Usage

API_KEY = "sk-test-loopback"
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}


def client(server: LLMServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_url, api_key=API_KEY, max_retries=0)


def test_plain_reply_with_usage_and_the_request_kept(llm_server: LLMServer) -> None:
    llm_server.script(Text("hello", Usage(7, 3)))
    answer = client(llm_server).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content == "hello"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (7, 3)  # type: ignore[union-attr]
    assert answer.model == "gpt-4o-mini"
    [request] = llm_server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.body["messages"] == [{"role": "user", "content": "hi"}]


def test_default_reply_is_a_final_answer_with_default_usage(llm_server: LLMServer) -> None:
    answer = client(llm_server).chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert "Final Answer:" in (answer.choices[0].message.content or "")
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (100, 20)  # type: ignore[union-attr]


def test_tool_call_is_native_when_tools_are_offered_else_react_text(llm_server: LLMServer) -> None:
    llm_server.script(ToolCall("lookup", {"q": 1}), ToolCall("lookup", {"q": 1}))
    native = client(llm_server).chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        tools=[TOOL],  # type: ignore[list-item]
    )
    assert native.choices[0].finish_reason == "tool_calls"
    assert native.choices[0].message.tool_calls[0].function.name == "lookup"  # type: ignore[index,union-attr]
    react = client(llm_server).chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert "Action: lookup" in (react.choices[0].message.content or "")


@pytest.mark.parametrize("include_usage", [True, False])
def test_streaming_ends_with_a_usage_chunk_when_asked(llm_server: LLMServer, include_usage: bool) -> None:
    llm_server.script(Text("a streamed answer that is longer than one chunk"))
    stream = client(llm_server).chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": include_usage},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "a streamed answer that is longer than one chunk"
    usage = [c.usage for c in chunks if c.usage is not None]
    assert [(u.prompt_tokens, u.completion_tokens) for u in usage] == ([(100, 20)] if include_usage else [])


def test_failures_and_malformed_replies(llm_server: LLMServer) -> None:
    llm_server.script(Failure(429), Failure(500), Malformed())
    with pytest.raises(openai.RateLimitError):
        client(llm_server).chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.InternalServerError):
        client(llm_server).chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(ValueError):  # the SDK lets the JSON decoder's error through
        client(llm_server).chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_messages(llm_server: LLMServer, stream: bool) -> None:
    anthropic = pytest.importorskip("anthropic")
    llm_server.script(Text("hello"))
    messages = anthropic.Anthropic(base_url=llm_server.url, api_key=API_KEY, max_retries=0).messages
    if stream:
        with messages.stream(model="claude-x", max_tokens=50, messages=[{"role": "user", "content": "hi"}]) as events:
            answer = events.get_final_message()
    else:
        answer = messages.create(model="claude-x", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    assert answer.content[0].text == "hello"
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (100, 20)
    assert llm_server.requests[0].path == "/v1/messages"
