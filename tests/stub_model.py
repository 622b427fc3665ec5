"""A stand-in model server for the real agent CLIs: it records every request and
answers just enough of each API for one turn to end with a short text reply.

- Anthropic Messages (Claude Code): POST /v1/messages (SSE or JSON),
  /v1/messages/count_tokens, GET /v1/models;
- OpenAI Responses (Codex): POST /v1/responses (SSE unless stream is false);
- Gemini (Gemini CLI): models/M:streamGenerateContent?alt=sse, :generateContent
  (its JSON-mode side calls get an object built from their schema), :countTokens;
- OpenAI chat completions (OpenClaw): POST /v1/chat/completions (SSE when the body
  says `"stream": true`, as OpenClaw always does), GET /v1/models;
- anything else: 200 {} and recorded, so an unknown ping never hangs a CLI.

Stdlib only, served from a thread of the test process. Each request is kept as
{method, path, query, headers, body} and appended to a JSON-lines log file.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

REPLY: Final = "OK"
USAGE_TOKENS: Final = 10
MODEL: Final = "stub-model"  # the model id OpenClaw is configured with (stub/stub-model)
CHAT_USAGE: Final = {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}


def fill_from_schema(schema: Any) -> Any:
    """A small value that satisfies a simple JSON schema (Gemini CLI's JSON-mode calls)."""
    if not isinstance(schema, dict):
        return {}
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    kind = (kind[0] if isinstance(kind, list) else kind or "").lower()
    if kind == "object" or "properties" in schema:
        return {k: fill_from_schema(v) for k, v in (schema.get("properties") or {}).items()}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)  # its router rejects a complexity_score of 0
    if kind == "boolean":
        return False
    return REPLY


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the recorded requests are the log

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            raw = b"".join(chunks)
        else:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        if encoding == "gzip":
            raw = gzip.decompress(raw)
        elif encoding == "deflate":
            raw = zlib.decompress(raw)
        return raw

    def _handle(self) -> None:
        url = urlsplit(self.path)
        raw = self._body() if self.command == "POST" else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self.server.record(
            {
                "method": self.command,
                "path": url.path,
                "query": url.query,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            }
        )
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the CLI hung up
            self._answer(url.path, url.query, body if isinstance(body, dict) else {})

    def _answer(self, path: str, query: str, body: dict[str, Any]) -> None:
        if path.endswith("/chat/completions"):
            self._chat(body)
        elif self.command == "GET" and path.rstrip("/").endswith("/models"):
            model = {"id": MODEL, "object": "model", "created": 0, "owned_by": "stub"}
            self._json({"object": "list", "data": [model]})
        elif path.endswith("/messages/count_tokens"):
            self._json({"input_tokens": USAGE_TOKENS})
        elif path.endswith("/messages"):
            self._anthropic(body)
        elif path.endswith("/responses"):
            self._responses(body)
        elif ":streamGenerateContent" in path or ":generateContent" in path:
            self._gemini(path, body, stream="alt=sse" in query)
        elif ":countTokens" in path:
            self._json({"totalTokens": USAGE_TOKENS})
        else:
            self._json({})

    def _json(self, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: list[tuple[str | None, Any]], done: bool = False) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        for name, data in events:
            head = f"event: {name}\n" if name else ""
            self.wfile.write(f"{head}data: {json.dumps(data)}\n\n".encode())
        if done:  # OpenAI's end-of-stream marker
            self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _chat(self, body: dict[str, Any]) -> None:
        head = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "created": int(time.time()),
            "model": body.get("model", MODEL),
        }
        if not body.get("stream"):
            message = {"role": "assistant", "content": REPLY}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            self._json(
                {**head, "object": "chat.completion", "choices": [choice], "usage": CHAT_USAGE}
            )
            return
        chunk = {**head, "object": "chat.completion.chunk"}
        deltas = [({"role": "assistant", "content": ""}, None), ({"content": REPLY}, None)]
        events: list[tuple[str | None, Any]] = [
            (None, {**chunk, "choices": [{"index": 0, "delta": d, "finish_reason": f}]})
            for d, f in deltas
        ]
        last = {"index": 0, "delta": {}, "finish_reason": "stop"}
        events.append((None, {**chunk, "choices": [last], "usage": CHAT_USAGE}))
        self._sse(events, done=True)

    def _anthropic(self, body: dict[str, Any]) -> None:
        usage = {"input_tokens": USAGE_TOKENS, "output_tokens": 1}
        message = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-stub"),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        if not body.get("stream"):
            text = [{"type": "text", "text": REPLY}]
            self._json({**message, "content": text, "stop_reason": "end_turn"})
            return
        delta = {"type": "text_delta", "text": REPLY}
        events: list[tuple[str | None, Any]] = [
            ("message_start", {"type": "message_start", "message": message}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "usage": {"output_tokens": 1},
                               "delta": {"stop_reason": "end_turn", "stop_sequence": None}}),
            ("message_stop", {"type": "message_stop"}),
        ]  # fmt: skip
        self._sse(events)

    def _responses(self, body: dict[str, Any]) -> None:
        item_id = f"msg_{uuid.uuid4().hex[:24]}"
        text = {"type": "output_text", "text": REPLY, "annotations": []}
        item = {"type": "message", "id": item_id, "status": "completed", "role": "assistant",
                "content": [text]}  # fmt: skip
        usage = {"input_tokens": USAGE_TOKENS, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": 1, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": USAGE_TOKENS + 1}  # fmt: skip
        response = {"id": f"resp_{uuid.uuid4().hex[:24]}", "object": "response",
                    "created_at": int(time.time()), "model": body.get("model", "stub"),
                    "status": "in_progress", "output": []}  # fmt: skip
        done = {**response, "status": "completed", "output": [item], "usage": usage}
        if body.get("stream") is False:
            self._json(done)
            return
        part = {"item_id": item_id, "output_index": 0, "content_index": 0}
        steps: list[dict[str, Any]] = [
            {"type": "response.created", "response": response},
            {"type": "response.output_item.added", "output_index": 0,
             "item": {**item, "status": "in_progress", "content": []}},
            {"type": "response.content_part.added", **part, "part": {**text, "text": ""}},
            {"type": "response.output_text.delta", **part, "delta": REPLY},
            {"type": "response.output_text.done", **part, "text": REPLY},
            {"type": "response.content_part.done", **part, "part": text},
            {"type": "response.output_item.done", "output_index": 0, "item": item},
            {"type": "response.completed", "response": done},
        ]  # fmt: skip
        self._sse([(s["type"], {**s, "sequence_number": n}) for n, s in enumerate(steps)])

    def _gemini(self, path: str, body: dict[str, Any], stream: bool) -> None:
        config = body.get("generationConfig") or {}
        text = REPLY
        if str(config.get("responseMimeType", "")).startswith("application/json"):
            schema = config.get("responseJsonSchema") or config.get("responseSchema")
            text = json.dumps(fill_from_schema(schema))
        model = path.split("/models/")[-1].split(":")[0]
        answer = {
            "candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": USAGE_TOKENS, "candidatesTokenCount": 1,
                              "totalTokenCount": USAGE_TOKENS + 1},
            "modelVersion": model,
        }  # fmt: skip
        if stream:
            self._sse([(None, answer)])
        else:
            self._json(answer)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, log: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.log = log
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.requests.append(entry)
            with self.log.open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")


class StubModel:
    """`with StubModel(log) as stub:` serves on stub.url until the block ends."""

    def __init__(self, log: Path) -> None:
        self._server = _Server(log)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> StubModel:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def openai_url(self) -> str:
        """The base URL an OpenAI-style client (OpenClaw) is given."""
        return f"{self.url}/v1"

    def requests(self) -> list[dict[str, Any]]:
        with self._server.lock:
            return list(self._server.requests)

    def chats(self, since: int = 0) -> list[dict[str, Any]]:
        """The chat-completion request bodies from the *since*-th request on."""
        return [
            r["body"]
            for r in self.requests()[since:]
            if r["method"] == "POST" and r["path"].endswith("/chat/completions")
        ]
