"""A tiny scripted OpenAI-compatible chat-completions server on 127.0.0.1 for planner-backend tests (real HTTP)."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Reply", "FakeLLMServer", "plan_json"]


def plan_json(*steps: tuple[str, dict[str, Any]]) -> str:
    """Plan JSON text from (skill, args) pairs."""
    return json.dumps({"steps": [{"skill": s, "args": a} for s, a in steps]})


@dataclass
class Reply:
    """One scripted answer: an HTTP status with a body, after an optional stall; or a dropped connection."""

    status: int = 200
    body: bytes = b""
    stall_s: float = 0.0
    drop: bool = False  # close the connection without any response
    headers: dict[str, str] = field(default_factory=dict)


class FakeLLMServer:
    """Threaded HTTP server answering POST /v1/chat/completions from a queue of scripted replies.

    An empty queue answers HTTP 500 "no scripted reply" so a test that asks more than it scripted fails
    loudly. Every request body is recorded (``requests``) for assertions.
    """

    def __init__(self) -> None:
        self._replies: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with server._lock:
                    server.paths.append(self.path)
                    server.headers.append(dict(self.headers))
                    try:
                        server.requests.append(json.loads(raw))
                    except json.JSONDecodeError:
                        server.requests.append({"_raw": raw.decode(errors="replace")})
                    reply = server._replies.popleft() if server._replies else \
                        Reply(500, b'{"error": {"message": "no scripted reply"}}')
                if reply.stall_s:
                    server._stop.wait(reply.stall_s)
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply.body)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fake-llm", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()  # release stalled handlers
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # ---- scripting -------------------------------------------------------------------------------------------
    def push(self, reply: Reply) -> FakeLLMServer:
        with self._lock:
            self._replies.append(reply)
        return self

    def reply_text(self, content: str | None, finish_reason: str = "stop") -> FakeLLMServer:
        """A 200 chat completion whose assistant message is ``content``."""
        body = {"id": "chatcmpl-test", "object": "chat.completion", "model": "fake",
                "choices": [{"index": 0, "finish_reason": finish_reason,
                             "message": {"role": "assistant", "content": content}}]}
        return self.push(Reply(200, json.dumps(body).encode()))

    def reply_plan(self, *steps: tuple[str, dict[str, Any]]) -> FakeLLMServer:
        return self.reply_text(plan_json(*steps))

    def reply_status(self, status: int, message: str = "server error", **headers: str) -> FakeLLMServer:
        body = json.dumps({"error": {"message": message, "type": "test"}}).encode()
        return self.push(Reply(status, body, headers=dict(headers)))

    def reply_raw(self, status: int, body: bytes) -> FakeLLMServer:
        return self.push(Reply(status, body))

    def reply_response_format_400(self) -> FakeLLMServer:
        """What servers without JSON mode answer (vLLM/llama.cpp variants)."""
        return self.reply_status(400, "Unsupported parameter: 'response_format' is not supported with this model")

    def stall(self, seconds: float) -> FakeLLMServer:
        """Accept the request, then answer nothing for ``seconds`` (longer than the client's timeout)."""
        return self.push(Reply(500, b"{}", stall_s=seconds))

    def drop(self) -> FakeLLMServer:
        """Close the connection without answering."""
        return self.push(Reply(drop=True))

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._replies)
