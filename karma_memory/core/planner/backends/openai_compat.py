"""Planner backend for any OpenAI-compatible chat-completions server (OpenAI, vLLM, Ollama, llama.cpp server)."""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Sequence

from karma_memory.core.errors import ConfigError, PlanValidationError
from karma_memory.core.planner.backends._chat import check_number, plan_with_repair
from karma_memory.core.planner.base import ChatMessage, Plan, PlanningContext
from karma_memory.core.planner.prompt import flatten_messages

__all__ = ["OpenAICompatBackend", "API_KEY_ENV", "chat_completions_url"]

_LOG = logging.getLogger(__name__)

#: Environment variables read (in this order) when no api_key is given.
API_KEY_ENV = ("KARMA_LLM_API_KEY", "OPENAI_API_KEY")
_RETRY_STATUS = {408, 409, 425, 429}
_MAX_BACKOFF_S = 8.0
_MAX_BODY_BYTES = 8 * 1024 * 1024


class _Retryable(Exception):
    """A failure worth another attempt (connection, timeout, 5xx, 429)."""

    def __init__(self, reason: str, wait_s: float | None = None) -> None:
        super().__init__(reason)
        self.wait_s = wait_s


def chat_completions_url(base_url: str) -> str:
    """Full /v1/chat/completions URL from a server root, a /v1 base or the full endpoint.

    >>> chat_completions_url("http://127.0.0.1:8000")
    'http://127.0.0.1:8000/v1/chat/completions'
    >>> chat_completions_url("https://api.openai.com/v1/")
    'https://api.openai.com/v1/chat/completions'
    """
    if not isinstance(base_url, str) or not base_url.strip():
        raise ConfigError(f"base_url must be an http(s) URL, got {base_url!r}")
    url = base_url.strip().rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"base_url must be an http(s) URL, got {base_url!r}")
    if url.endswith("/chat/completions"):
        return url
    if url.endswith("/v1"):
        return url + "/chat/completions"
    return url + "/v1/chat/completions"


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OpenAICompatBackend:
    """Plans by asking an OpenAI-compatible /v1/chat/completions endpoint for a JSON plan (stdlib HTTP only).

    Failures are typed: an unreachable, failing or stalled server raises PlanValidationError
    ("LLM backend unavailable: <url>: <reason>") after ``max_retries`` retries with exponential backoff;
    invalid model output gets one repair round (the validation error is sent back), then raises with both
    reasons. The model's text is parsed into data and never executed.

    Args:
        base_url: server root, ``.../v1`` or the full ``.../v1/chat/completions`` URL.
        model: the model name the server expects.
        api_key: bearer token; None reads KARMA_LLM_API_KEY, then OPENAI_API_KEY (none sent if unset).
        timeout_s: limit for each request (connect, wait for the answer, read it), seconds.
        max_retries: extra attempts after a connection error, timeout, HTTP 5xx/429.
        temperature: sampling temperature (0 = the paper's deterministic setting).
        max_tokens: answer length limit.
        json_mode: ask for ``response_format: {"type": "json_object"}``; dropped for good when the server
            answers HTTP 400 about response_format.
        backoff_s: first retry delay, doubled per retry (capped at 8 s).
        repair_rounds: how many times invalid output is sent back for correction.
        max_steps: longest plan accepted.
        allow_code: convert Python-style skill calls (parsed with ast, never executed) instead of rejecting.
        flatten: merge the prompt into one system + one user message (chat templates that demand
            alternating roles, e.g. some vLLM/llama.cpp templates).
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *, timeout_s: float = 30.0,
                 max_retries: int = 2, temperature: float = 0.0, max_tokens: int = 1024, json_mode: bool = True,
                 backoff_s: float = 0.5, repair_rounds: int = 1, max_steps: int = 50, allow_code: bool = False,
                 flatten: bool = False) -> None:
        self.url = chat_completions_url(base_url)
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"model must be a non-empty string, got {model!r}")
        check_number("timeout_s", timeout_s, 0.01)
        check_number("max_retries", max_retries, 0, 20, integer=True)
        check_number("temperature", temperature, 0.0, 2.0)
        check_number("max_tokens", max_tokens, 1, integer=True)
        check_number("backoff_s", backoff_s, 0.0, 60.0)
        check_number("repair_rounds", repair_rounds, 0, 5, integer=True)
        check_number("max_steps", max_steps, 1, integer=True)
        self.model = model.strip()
        self.name = f"openai:{self.model}"
        self._api_key = api_key if api_key is not None else next(
            (os.environ[v] for v in API_KEY_ENV if os.environ.get(v)), None)
        self.timeout_s = float(timeout_s)
        self.max_retries = max_retries
        self.temperature = float(temperature)
        self.max_tokens = max_tokens
        self.json_mode = bool(json_mode)
        self.backoff_s = float(backoff_s)
        self.repair_rounds = repair_rounds
        self.max_steps = max_steps
        self.allow_code = bool(allow_code)
        self.flatten = bool(flatten)
        # no proxy for a local server (an http_proxy in the environment must not capture 127.0.0.1)
        handlers = [urllib.request.ProxyHandler({})] if _is_loopback(self.url) else []
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:  # never shows the API key
        return f"OpenAICompatBackend(url={self.url!r}, model={self.model!r})"

    # ---- PlannerBackend ----------------------------------------------------------------------------------
    def plan(self, context: PlanningContext) -> Plan:
        """Plan one instruction from its memory-augmented prompt.

        Raises:
            PlanValidationError: the server is unavailable, or the output stays invalid after repair.
        """
        return plan_with_repair(self.complete, context, source=self.name, repair_rounds=self.repair_rounds,
                                max_steps=self.max_steps, allow_code=self.allow_code)

    def complete(self, messages: Sequence[ChatMessage]) -> str:
        """One chat completion with retries; returns the assistant's text.

        Raises:
            PlanValidationError: "LLM backend unavailable: <url>: <reason>" after the retries, or at once for
                an error no retry can fix (HTTP 401/403/404/other 4xx, a malformed response).
        """
        sent = flatten_messages(messages) if self.flatten else tuple(messages)
        attempts = self.max_retries + 1
        attempt = 0
        json_fallback_used = False
        while True:
            payload = self._payload(sent)
            try:
                return self._request(payload)
            except _Retryable as err:
                attempt += 1
                if attempt >= attempts:
                    raise PlanValidationError(f"LLM backend unavailable: {self.url}: {err} "
                                              f"(after {attempt} attempt{'s' if attempt > 1 else ''})") from err
                wait = err.wait_s if err.wait_s is not None else self.backoff_s * 2 ** (attempt - 1)
                _LOG.warning("LLM backend %s: %s; retry %d/%d in %.2f s", self.url, err, attempt,
                             self.max_retries, wait)
                time.sleep(min(wait, _MAX_BACKOFF_S))
            except _ResponseFormatRejected as err:
                if json_fallback_used:
                    raise PlanValidationError(f"LLM backend at {self.url} rejected the request: {err}") from None
                json_fallback_used = True
                self.json_mode = False
                _LOG.warning("LLM backend %s does not support response_format (%s); continuing without JSON mode",
                             self.url, err)

    # ---- HTTP --------------------------------------------------------------------------------------------
    def _payload(self, messages: Sequence[ChatMessage]) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stream": False,
        }
        if self.json_mode:
            payload["response_format"] = {"type": "json_object"}
        return payload

    def _request(self, payload: dict[str, Any]) -> str:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(self.url, data=json.dumps(payload).encode(), headers=headers,
                                         method="POST")
        deadline = time.monotonic() + self.timeout_s
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                status, body = response.status, self._read(response, deadline)
                retry_after = None
        except urllib.error.HTTPError as err:
            status, retry_after = err.code, err.headers.get("Retry-After") if err.headers else None
            try:
                body = self._read(err, deadline)
            except (OSError, http.client.HTTPException):
                body = b""
        except urllib.error.URLError as err:
            raise _Retryable(f"cannot connect: {err.reason}") from None
        except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as err:
            reason = f"no answer within timeout_s={self.timeout_s:g}" if isinstance(err, TimeoutError) \
                else f"connection failed: {type(err).__name__}: {err}"
            raise _Retryable(reason) from None
        text = body.decode("utf-8", errors="replace")
        if status == 200:
            return self._content(text)
        snippet = " ".join(text.split())[:300]
        if status == 400 and self.json_mode and "response_format" in text.lower():
            raise _ResponseFormatRejected(f"HTTP 400: {snippet}")
        if status >= 500 or status in _RETRY_STATUS:
            wait = None
            if retry_after and retry_after.strip().replace(".", "", 1).isdigit():
                wait = float(retry_after)
            raise _Retryable(f"HTTP {status}: {snippet}", wait)
        hint = {401: " (check the API key)", 403: " (check the API key)",
                404: " (check base_url and model)"}.get(status, "")
        raise PlanValidationError(f"LLM backend at {self.url} rejected the request: HTTP {status}{hint}: {snippet}")

    def _read(self, response: Any, deadline: float) -> bytes:
        """Read the body in chunks, cutting a server that trickles past the deadline."""
        chunks: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError("body not complete before the deadline")
            chunk = response.read(65536)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > _MAX_BODY_BYTES:
                raise PlanValidationError(f"LLM backend at {self.url} sent more than {_MAX_BODY_BYTES} bytes")
            chunks.append(chunk)

    def _content(self, text: str) -> str:
        try:
            data = json.loads(text)
            choice = data["choices"][0]
            content = choice["message"]["content"]
        except (json.JSONDecodeError, KeyError, IndexError, TypeError) as err:
            raise PlanValidationError(f"LLM backend at {self.url} returned a malformed chat-completions response "
                                      f"({type(err).__name__}: {err}): {' '.join(text.split())[:200]!r}") from None
        if choice.get("finish_reason") == "length":
            _LOG.warning("LLM backend %s: answer cut at max_tokens=%d", self.url, self.max_tokens)
        if content is None:
            refusal = choice["message"].get("refusal")
            return str(refusal) if refusal else ""
        if not isinstance(content, str):
            raise PlanValidationError(f"LLM backend at {self.url} returned non-text content {content!r:.200}")
        return content


class _ResponseFormatRejected(Exception):
    """HTTP 400 naming response_format: the server has no JSON mode."""
