"""A stand-in OpenAI chat-completions server for the real OpenClaw: it records every
request and answers each with a one-word assistant reply, no tool calls.

- POST /v1/chat/completions: server-sent events when the body says `"stream": true`
  (OpenClaw always streams), else one JSON completion;
- GET /v1/models: the one stub model;
- anything else: 404, recorded too.

Stdlib only, served from a thread of the test process. Each request is kept as
{method, path, headers, body} and appended to a JSON-lines log file.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

__all__ = ["MODEL", "REPLY", "StubOpenAI"]

MODEL: Final = "stub-model"
REPLY: Final = "OK"
USAGE: Final = {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the recorded requests are the log

    def do_GET(self) -> None:
        self.server.record(self._entry(None))
        if self.path.rstrip("/").endswith("/models"):
            models = [{"id": MODEL, "object": "model", "created": 0, "owned_by": "stub"}]
            self._json(200, {"object": "list", "data": models})
        else:
            self._json(404, {"error": {"message": "not found", "type": "not_found"}})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self.server.record(self._entry(body))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client hung up
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._json(404, {"error": {"message": "not found", "type": "not_found"}})
            elif isinstance(body, dict) and body.get("stream"):
                self._stream(body)
            else:
                self._json(200, self._completion(body if isinstance(body, dict) else {}))

    def _entry(self, body: Any) -> dict[str, Any]:
        headers = {k.lower(): v for k, v in self.headers.items()}
        return {"method": self.command, "path": self.path, "headers": headers, "body": body}

    def _json(self, code: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        message = {"role": "assistant", "content": REPLY}
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", MODEL),
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": USAGE,
        }

    def _stream(self, body: dict[str, Any]) -> None:
        head = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", MODEL),
        }
        chunks = [
            {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                  "finish_reason": None}]},
            {**head, "choices": [{"index": 0, "delta": {"content": REPLY}, "finish_reason": None}]},
            {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
             "usage": USAGE},
        ]  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        for chunk in chunks:
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


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


class StubOpenAI:
    """`with StubOpenAI(log) as stub:` serves on stub.url (…/v1) until the block ends."""

    def __init__(self, log: Path) -> None:
        self._server = _Server(log)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> StubOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

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
