"""A loopback LLM server: OpenAI chat completions and Anthropic Messages, with scripted replies.

CrewAI's own ``LLM(model=..., base_url=server.openai_url, api_key=...)`` talks to it, so the provider SDK
(or LiteLLM) really runs. Each call takes the next scripted reply (``script(...)``), or, with none left,
the default one: a ReAct final answer. Every reply reports fixed usage (100 prompt, 20 completion tokens
unless told otherwise), also at the end of a stream when the client asks for it
(``stream_options.include_usage``; Anthropic always sends it). Every request is kept (``requests``).

Replies: ``Text``, ``ToolCall`` (a native tool call when the request offers tools, else the ReAct text of
one, so one script serves CrewAI 1.x and 0.x), ``Failure`` (an HTTP error such as 429 or 500), ``Malformed``
(a 200 that is not JSON), ``Slow`` (another reply, held back until a delay passes or the server stops).
Anthropic's ``/v1/messages/count_tokens`` is answered (100) without taking a reply.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FINAL_ANSWER = "Thought: I now know the final answer\nFinal Answer: done"
PROMPT_TOKENS = 100
COMPLETION_TOKENS = 20


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = PROMPT_TOKENS
    completion_tokens: int = COMPLETION_TOKENS


@dataclass(frozen=True)
class Text:
    content: str = FINAL_ANSWER
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)

    def react_text(self) -> str:
        return f"Thought: I should use a tool\nAction: {self.name}\nAction Input: {json.dumps(self.arguments)}"


@dataclass(frozen=True)
class Failure:
    status: int = 500
    message: str = "loopback server error"


@dataclass(frozen=True)
class Malformed:
    body: bytes = b"{this is not json"


@dataclass(frozen=True)
class Slow:
    seconds: float
    then: Reply = field(default_factory=Text)


Reply = Text | ToolCall | Failure | Malformed | Slow


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def streaming(self) -> bool:
        return bool(self.body.get("stream"))


class LLMServer:
    """Start with ``start()``, stop with ``stop()`` (the fixture ``llm_server`` does both)."""

    def __init__(self, default: Reply | None = None) -> None:
        self.default: Reply = default or Text()
        self._replies: deque[Reply] = deque()
        self._requests: list[Request] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="llm-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def openai_url(self) -> str:
        """The ``base_url`` for OpenAI-compatible clients."""
        return f"{self.url}/v1"

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next calls, in order."""
        with self._lock:
            self._replies.extend(replies)

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def start(self) -> LLMServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases slow replies still held back
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _take(self, request: Request) -> tuple[Reply, str]:
        with self._lock:
            self._requests.append(request)
            reply = self._replies.popleft() if self._replies else self.default
            return reply, f"{next(self._ids):04d}"

    def _answer(self, handler: BaseHTTPRequestHandler, request: Request) -> None:
        if request.path.endswith("/messages/count_tokens"):  # Anthropic's token count: not a call, no reply taken
            with self._lock:
                self._requests.append(request)
            _send(handler, 200, json.dumps({"input_tokens": PROMPT_TOKENS}).encode(), "application/json")
            return
        reply, number = self._take(request)
        while isinstance(reply, Slow):
            self._stopping.wait(reply.seconds)
            reply = reply.then
        if isinstance(reply, Failure):
            error = {"type": "error", "error": {"message": reply.message, "type": "server_error", "code": None}}
            _send(handler, reply.status, json.dumps(error).encode(), "application/json")
        elif isinstance(reply, Malformed):
            _send(handler, 200, reply.body, "application/json")
        elif request.path.endswith("/messages"):
            _anthropic(handler, request, reply, number)
        else:
            _openai(handler, request, reply, number)


def _handler(server: LLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {}
            headers = {key.lower(): value for key, value in self.headers.items()}
            server._answer(self, Request(self.path, headers, body))

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def _send(handler: BaseHTTPRequestHandler, status: int, data: bytes, content_type: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _send_events(handler: BaseHTTPRequestHandler, events: list[bytes]) -> None:
    data = b"".join(events)
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _usage(reply: Text | ToolCall) -> dict[str, int]:
    usage = reply.usage
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def _openai_message(request: Request, reply: Text | ToolCall, number: str) -> tuple[dict[str, Any], str]:
    """The assistant message and its finish reason."""
    if isinstance(reply, ToolCall) and request.body.get("tools"):
        call = {
            "id": f"call_{number}",
            "type": "function",
            "function": {"name": reply.name, "arguments": json.dumps(reply.arguments)},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
    text = reply.react_text() if isinstance(reply, ToolCall) else reply.content
    return {"role": "assistant", "content": text}, "stop"


def _openai(handler: BaseHTTPRequestHandler, request: Request, reply: Text | ToolCall, number: str) -> None:
    model = str(request.body.get("model", "unknown"))
    message, finish_reason = _openai_message(request, reply, number)
    head = {"id": f"chatcmpl-{number}", "created": 1_700_000_000, "model": model}
    if not request.streaming:
        answer = {
            **head,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": _usage(reply),
        }
        _send(handler, 200, json.dumps(answer).encode(), "application/json")
        return
    chunk = {**head, "object": "chat.completion.chunk"}
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    if message.get("tool_calls"):
        deltas.append({"tool_calls": [{"index": 0, **message["tool_calls"][0]}]})
    else:
        text = message["content"]
        deltas += [{"content": text[i : i + 16]} for i in range(0, len(text), 16)]
    chunks = [{**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]} for delta in deltas]
    chunks.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}]})
    if (request.body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**chunk, "choices": [], "usage": _usage(reply)})
    _send_events(handler, [f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"])


def _anthropic(handler: BaseHTTPRequestHandler, request: Request, reply: Text | ToolCall, number: str) -> None:
    model = str(request.body.get("model", "unknown"))
    if isinstance(reply, ToolCall) and request.body.get("tools"):
        block: dict[str, Any] = {
            "type": "tool_use",
            "id": f"toolu_{number}",
            "name": reply.name,
            "input": reply.arguments,
        }
        stop_reason = "tool_use"
    else:
        text = reply.react_text() if isinstance(reply, ToolCall) else reply.content
        block, stop_reason = {"type": "text", "text": text}, "end_turn"
    usage = reply.usage
    message = {"id": f"msg_{number}", "type": "message", "role": "assistant", "model": model}
    if not request.streaming:
        answer = {
            **message,
            "content": [block],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens},
        }
        _send(handler, 200, json.dumps(answer).encode(), "application/json")
        return
    if block["type"] == "text":
        start, delta = {"type": "text", "text": ""}, {"type": "text_delta", "text": block["text"]}
    else:
        start = {**block, "input": {}}
        delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
    events = [
        (
            "message_start",
            {
                "message": {
                    **message,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": usage.prompt_tokens, "output_tokens": 1},
                }
            },
        ),
        ("content_block_start", {"index": 0, "content_block": start}),
        ("content_block_delta", {"index": 0, "delta": delta}),
        ("content_block_stop", {"index": 0}),
        (
            "message_delta",
            {
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": usage.completion_tokens},
            },
        ),
        ("message_stop", {}),
    ]
    _send_events(
        handler, [f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode() for name, data in events]
    )
