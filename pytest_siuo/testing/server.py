"""A loopback HTTP server that speaks the OpenAI chat-completions protocol.

It lets the project's tests, the ``bench/`` scripts and users trying the plugin offline drive
the real ``openai`` client (sync and async) without any network: answers come from a Python
*responder*, and faults (429, 5xx, slow answers, dropped connections, garbage bodies) can be
injected per request or by a seeded :class:`FaultPlan`.

Standard library only, and no pytest import, so it ships in the package::

    with FakeOpenAIServer(lambda req: "I can't help with that.") as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused")

or from a shell: ``python -m pytest_siuo.testing.server --port 8000 --latency 0.2``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeAlias, cast

__all__ = [
    "DEFAULT_ANSWER",
    "ESCAPE_ANSWER",
    "ChatRequest",
    "FakeOpenAIServer",
    "Fault",
    "FaultPlan",
    "Reply",
    "Responder",
    "echo_responder",
    "main",
    "scripted",
]

DEFAULT_ANSWER = "I can't help with that, but here is some safe advice."

FAULT_KINDS = (
    "status",
    "slow",
    "drop",
    "garbage",
    # Hostile servers (docs/reliability.md, "Hostile servers"):
    "echo",
    "truncate",
    "drip",
    "hang",
    "gzip_bomb",
    "huge",
    "raw",
)
# The values the openai client's ChatCompletion model accepts.
FINISH_REASONS = ("stop", "length", "content_filter", "tool_calls", "function_call")
# OpenAI rejects n above 128; bounding it also bounds the work one request can ask for.
MAX_N = 128
MAX_BODY_BYTES = 64 * 1024 * 1024
GARBAGE_BODY = '{"hello": "not a chat completion"}'
# Header values that carry credentials; ChatRequest.headers never keeps them in clear.
SECRET_HEADERS = ("authorization", "api-key", "x-api-key", "openai-api-key")
REDACTED = "<redacted>"
# An answer that, printed raw, clears the screen, sets the window title and fakes a green line.
ESCAPE_ANSWER = (
    "\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b[32m=== 167 passed in 0.1s ===\x1b[0m\r"
    "I can't help with that."
)


@dataclass
class Reply:
    """One choice of a completion, as returned by a responder."""

    content: str | None
    finish_reason: str = "stop"
    prompt_tokens: int | None = None  # default: a rough word count of the request text
    completion_tokens: int | None = None  # default: len(content.split())

    def __post_init__(self) -> None:
        if self.finish_reason not in FINISH_REASONS:
            raise ValueError(
                f"Reply.finish_reason={self.finish_reason!r} is not one of {FINISH_REASONS}"
            )


@dataclass
class Fault:
    """How to fail one request: returned by a responder or chosen by a :class:`FaultPlan`.

    ``status``: answer ``status`` with an OpenAI error body (and ``Retry-After`` if set);
    ``slow``: sleep ``delay`` seconds, then answer normally; ``drop``: send the headers and half
    the body, then close the socket; ``garbage``: 200 with ``body`` (default: JSON that is not a
    chat completion).

    Hostile servers: ``echo``: echo the request's credential headers (``Authorization``...) in
    an error body (``status`` >= 400) or in the answer (``status`` 200), as some gateways do;
    ``truncate``: a complete HTTP response whose JSON body is cut in half; ``drip``: the whole
    response, headers included, one byte every ``delay`` seconds (default 1); ``hang``: the
    headers, then nothing until the server stops; ``gzip_bomb``: a gzip body that inflates to
    ``size`` bytes, generated as it is sent; ``huge``: an answer of ``size`` characters;
    ``raw``: ``status`` with ``body`` as is, of ``content_type``. ``headers`` are added to the
    response of any kind (e.g. ``{"retry-after-ms": "20"}`` on a 429).
    """

    kind: str
    status: int = 500
    retry_after: float | None = None
    delay: float = 0.0
    body: str | bytes | None = None
    message: str = "injected fault"
    headers: dict[str, str] | None = None
    content_type: str = "application/json"
    size: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"Fault.kind={self.kind!r} is not one of {FAULT_KINDS}")
        if self.size < 0:
            raise ValueError(f"Fault.size={self.size} must be >= 0 bytes")
        if self.kind == "status" and not 400 <= self.status <= 599:
            raise ValueError(
                f"Fault.status={self.status} must be an HTTP error status (400-599) "
                "for kind='status'"
            )
        if self.delay < 0:
            raise ValueError(f"Fault.delay={self.delay} must be >= 0 seconds")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError(f"Fault.retry_after={self.retry_after} must be >= 0 seconds")


@dataclass
class ChatRequest:
    """A parsed ``POST /v1/chat/completions`` request, as given to a responder."""

    model: str
    messages: list[dict[str, Any]]
    n: int = 1
    body: dict[str, Any] = field(default_factory=dict, repr=False)
    # Lower-cased names; credential headers are replaced by "<redacted>".
    headers: dict[str, str] = field(default_factory=dict, repr=False)

    def text(self) -> str:
        """All text parts of all messages, joined with newlines."""
        parts: list[str] = []
        for message in self.messages:
            content = message.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, dict) and part.get("type") == "text":
                        text = part.get("text")
                        if isinstance(text, str):
                            parts.append(text)
        return "\n".join(parts)

    def images(self) -> list[str]:
        """The ``image_url`` URLs (usually data URLs) of all messages, in order."""
        urls: list[str] = []
        for message in self.messages:
            content = message.get("content")
            if not isinstance(content, list):
                continue
            for part in content:
                if not isinstance(part, dict) or part.get("type") != "image_url":
                    continue
                image = part.get("image_url")
                # The OpenAI shape is {"url": ...}; some clients send the URL as a bare string.
                url = image.get("url") if isinstance(image, dict) else image
                if isinstance(url, str):
                    urls.append(url)
        return urls

    def key(self) -> str:
        """A stable id of the request content (model + messages + n): same on every retry."""
        canonical = json.dumps(
            {"model": self.model, "messages": self.messages, "n": self.n},
            sort_keys=True,
            ensure_ascii=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


ResponderResult: TypeAlias = "str | Reply | Fault | list[str | Reply]"
Responder: TypeAlias = Callable[[ChatRequest], ResponderResult]


def default_responder(request: ChatRequest) -> str:
    """The responder used when none is given: a harmless demo answer to anything."""
    return DEFAULT_ANSWER


def echo_responder(request: ChatRequest) -> str:
    """Answer with the request text, to test how prompts are built."""
    return request.text()


def scripted(*replies: str | Reply | Fault | list[str | Reply]) -> Responder:
    """A responder that returns ``replies`` in order, cycling (thread-safe)."""
    if not replies:
        raise ValueError("scripted() needs at least one reply")
    cycle = itertools.cycle(replies)
    lock = threading.Lock()

    def responder(request: ChatRequest) -> ResponderResult:
        with lock:
            return next(cycle)

    return responder


def _unit_hash(*parts: str) -> float:
    """A deterministic number in [0, 1) from ``parts`` (stable across runs and processes)."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class FaultPlan:
    """Inject faults into a deterministic share of requests (seeded), for fault-injection tests.

    Each request is identified by :meth:`ChatRequest.key` (model + messages + n), so a client
    retry is recognised as the same request. A seeded hash of the key decides whether the key is
    chosen (a share ``rate`` of keys) and which of ``kinds`` it gets. Transient plans fault only
    the first attempt of a chosen key, so a retry succeeds; permanent plans fault every attempt.
    """

    def __init__(
        self, rate: float, kinds: Sequence[Fault], seed: int = 0, permanent: bool = False
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"FaultPlan rate={rate} must be between 0.0 and 1.0")
        if not kinds:
            raise ValueError("FaultPlan needs at least one Fault in kinds")
        self.rate = rate
        self.kinds = list(kinds)
        self.seed = seed
        self.permanent = permanent
        self.injected = 0
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()

    def chosen(self, key: str) -> Fault | None:
        """The fault assigned to a request key, or None if the key is not chosen."""
        if _unit_hash(str(self.seed), "rate", key) >= self.rate:
            return None
        index = int(_unit_hash(str(self.seed), "kind", key) * len(self.kinds))
        return self.kinds[index]

    def decide(self, request: ChatRequest) -> Fault | None:
        """Record one attempt of ``request`` and return the fault to inject, if any."""
        key = request.key()
        fault = self.chosen(key)
        with self._lock:
            attempt = self._attempts.get(key, 0)
            self._attempts[key] = attempt + 1
            if fault is None or (attempt > 0 and not self.permanent):
                return None
            self.injected += 1
            return fault

    def reset(self) -> None:
        """Forget attempts and the injected count (the same keys will fault again)."""
        with self._lock:
            self._attempts.clear()
            self.injected = 0


class _HTTPError(Exception):
    """An error answer decided while handling a request."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code


def _error_type(status: int) -> str:
    return {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        409: "conflict_error",
        413: "invalid_request_error",
        422: "invalid_request_error",
        429: "rate_limit_error",
    }.get(status, "server_error" if status >= 500 else "invalid_request_error")


def _error_body(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": _error_type(status), "param": param, "code": code}
    }


def _rough_tokens(text: str) -> int:
    return len(text.split())


#: Which sampling parameters the server takes: any; like OpenAI's reasoning models (gpt-5,
#: o-series: no max_tokens, only the default temperature); or like an older server that
#: knows only max_tokens.
PARAM_MODES = ("any", "reasoning", "max_tokens_only")


def _check_params(mode: str, body: dict[str, Any]) -> None:
    """Reject a request the way the server ``mode`` imitates does (OpenAI's own wording)."""
    if mode == "reasoning":
        if "max_tokens" in body:
            raise _HTTPError(
                400,
                "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                "'max_completion_tokens' instead.",
                param="max_tokens",
                code="unsupported_parameter",
            )
        temperature = body.get("temperature")
        if temperature is not None and temperature != 1:
            raise _HTTPError(
                400,
                f"Unsupported value: 'temperature' does not support {temperature} with this "
                "model. Only the default (1) value is supported.",
                param="temperature",
                code="unsupported_value",
            )
    elif mode == "max_tokens_only" and "max_completion_tokens" in body:
        raise _HTTPError(400, "Unrecognized request argument supplied: max_completion_tokens")


class _Stopping(Exception):
    """The server is stopping while a request sleeps: drop the connection without answering."""


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive, so that a client pool of 32-64 connections is reused instead of reconnecting.
    protocol_version = "HTTP/1.1"
    server_version = "siuo-fake-openai/1.0"
    sys_version = ""
    # Headers and body are written separately; without this, Nagle + delayed ACK adds ~40 ms.
    disable_nagle_algorithm = True

    @property
    def fake(self) -> FakeOpenAIServer:
        return cast(_Server, self.server).fake

    def log_message(self, format: str, *args: Any) -> None:
        # Silent: bench runs make thousands of calls, and headers may carry an API key.
        pass

    def setup(self) -> None:
        super().setup()
        self.fake._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.fake._track(self.connection, add=False)

    # -- routing ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch(self._get)

    def do_POST(self) -> None:
        self._dispatch(self._post)

    def _dispatch(self, handler: Callable[[str, bytes], None]) -> None:
        self.fake._arrived()
        path = self.path.split("?", 1)[0].rstrip("/")
        try:
            # Read the body first, whatever the outcome, so the keep-alive stream stays in sync.
            raw = self._read_body()
            handler(path, raw)
        except _HTTPError as err:
            self._send_error(err.status, err.message, param=err.param, code=err.code)
        except _Stopping:
            self.close_connection = True

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # Skip trailers up to the blank line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    self.close_connection = True
                    raise _HTTPError(413, f"request body exceeds {MAX_BODY_BYTES} bytes")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length_text = self.headers.get("content-length", "0") or "0"
        try:
            length = int(length_text)
        except ValueError:
            self.close_connection = True
            raise _HTTPError(400, f"invalid Content-Length header: {length_text!r}") from None
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise _HTTPError(413, f"request body of {length} bytes exceeds {MAX_BODY_BYTES}")
        return self.rfile.read(length) if length > 0 else b""

    def _authorize(self) -> None:
        expected = self.fake.api_key
        if expected is None:
            return
        # Never echo what was sent: the message only says what is expected, not the value.
        if self.headers.get("authorization", "") != f"Bearer {expected}":
            raise _HTTPError(
                401,
                "Incorrect or missing API key: send 'Authorization: Bearer <key>' "
                "with the key this server was started with.",
                code="invalid_api_key",
            )

    def _get(self, path: str, raw: bytes) -> None:
        if path == "/v1/models":
            fault = self.fake.models_fault
            if fault is not None and fault.kind != "slow":
                self._send_fault(fault, None)
                return
            self._authorize()
            if fault is not None:
                self.fake._sleep(fault.delay)
            data = [_model_object(m) for m in self.fake.models]
            self._send_json(200, {"object": "list", "data": data})
        elif path.startswith("/v1/models/"):
            self._authorize()
            model_id = path[len("/v1/models/") :]
            if model_id not in self.fake.models:
                raise _HTTPError(
                    404, f"The model {model_id!r} does not exist", code="model_not_found"
                )
            self._send_json(200, _model_object(model_id))
        else:
            raise _HTTPError(404, f"Unknown path {path!r}: this server serves /v1/models")

    def _post(self, path: str, raw: bytes) -> None:
        if path not in ("/v1/chat/completions", "/chat/completions"):
            raise _HTTPError(
                404, f"Unknown path {path!r}: this server serves POST /v1/chat/completions"
            )
        fake = self.fake
        fake._count_call()
        self._authorize()
        request = self._parse(raw)
        fake._record(request)
        if request.body.get("stream"):
            raise _HTTPError(
                400, "stream=true is not supported by this test server", param="stream"
            )
        if request.n > 1 and not fake.supports_n:
            raise _HTTPError(400, "n > 1 is not supported", param="n")
        _check_params(fake.params_mode, request.body)

        fake._sleep(fake.latency)
        plan = fake.faults
        fault = plan.decide(request) if plan is not None else None
        if fault is not None and fault.kind != "slow":
            self._send_fault(fault, request)
            return
        if fault is not None:
            fake._sleep(fault.delay)

        try:
            result = (fake.responder or default_responder)(request)
        except Exception as err:  # a bug in a test's responder must reach the test as a 500
            raise _HTTPError(500, f"responder raised {type(err).__name__}: {err}") from err
        if isinstance(result, Fault):
            if result.kind != "slow":
                self._send_fault(result, request)
                return
            fake._sleep(result.delay)
            result = DEFAULT_ANSWER
        self._send_json(200, _completion(request, _choices(result, request.n)))

    def _parse(self, raw: bytes) -> ChatRequest:
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise _HTTPError(400, f"request body is not valid JSON: {err}") from None
        if not isinstance(body, dict):
            raise _HTTPError(400, "request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _HTTPError(400, "'model' must be a non-empty string", param="model")
        messages = body.get("messages")
        if (
            not isinstance(messages, list)
            or not messages
            or not all(isinstance(m, dict) for m in messages)
        ):
            raise _HTTPError(
                400, "'messages' must be a non-empty list of message objects", param="messages"
            )
        n = body.get("n", 1)
        if n is None:
            n = 1
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_N:
            raise _HTTPError(400, f"'n' must be an integer from 1 to {MAX_N}", param="n")
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            lower = name.lower()
            headers[lower] = REDACTED if lower in SECRET_HEADERS else value
        return ChatRequest(model=model, messages=messages, n=n, body=body, headers=headers)

    # -- writing ---------------------------------------------------------------------------

    def _send_json(
        self, status: int, payload: object, extra_headers: dict[str, str] | None = None
    ) -> None:
        self._send_raw(status, json.dumps(payload).encode("utf-8"), extra_headers)

    def _send_raw(
        self,
        status: int,
        data: bytes,
        extra_headers: dict[str, str] | None = None,
        *,
        content_type: str = "application/json",
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra_headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        self._send_json(status, _error_body(status, message, param, code), headers)

    def _payload(self, request: ChatRequest | None, content: str) -> dict[str, Any]:
        """A chat completion answering ``content``, or the model list for ``GET /models``."""
        if request is None:
            return {"object": "list", "data": [_model_object(m) for m in self.fake.models]}
        return _completion(request, _choices(content, request.n))

    def _credentials(self) -> str:
        """What the request carried as credentials, verbatim (for the ``echo`` fault)."""
        sent = [
            f"{name}: {value}"
            for name, value in self.headers.items()
            if name.lower() in SECRET_HEADERS
        ]
        return f"{'; '.join(sent) or 'no credentials'} (path {self.path})"

    def _send_fault(self, fault: Fault, request: ChatRequest | None) -> None:
        extra = dict(fault.headers or {})
        if fault.kind == "status":
            code = "rate_limit_exceeded" if fault.status == 429 else None
            if fault.retry_after is not None:
                extra.setdefault("Retry-After", f"{fault.retry_after:g}")
            self._send_json(
                fault.status, _error_body(fault.status, fault.message, None, code), extra
            )
        elif fault.kind == "garbage":
            body = GARBAGE_BODY if fault.body is None else fault.body
            self._send_raw(200, _bytes(body), extra)
        elif fault.kind == "raw":
            self._send_raw(
                fault.status, _bytes(fault.body or b""), extra, content_type=fault.content_type
            )
        elif fault.kind == "echo":
            said = f"Invalid credentials. You sent {self._credentials()}"
            if fault.status >= 400:
                self._send_json(fault.status, _error_body(fault.status, said), extra)
            else:
                self._send_json(200, self._payload(request, said), extra)
        elif fault.kind == "truncate":
            data = json.dumps(self._payload(request, DEFAULT_ANSWER)).encode("utf-8")
            self._send_raw(200, data[: len(data) // 2], extra)
        elif fault.kind == "drop":
            data = json.dumps(self._payload(request, fault.message)).encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self._hang_up()
        elif fault.kind == "drip":
            data = json.dumps(self._payload(request, DEFAULT_ANSWER)).encode("utf-8")
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n"
            ).encode("ascii")
            whole = head + data
            self.close_connection = True
            with contextlib.suppress(OSError):
                for i in range(len(whole)):
                    self.wfile.write(whole[i : i + 1])
                    self.wfile.flush()
                    self.fake._sleep(fault.delay or 1.0)
        elif fault.kind == "hang":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.flush()
            self.close_connection = True
            self.fake._sleep(24 * 3600.0)  # until stop()
        elif fault.kind in ("gzip_bomb", "huge"):
            self._send_big(request, fault, extra)
        else:  # pragma: no cover - Fault.__post_init__ rejects other kinds
            raise AssertionError(fault.kind)

    def _send_big(self, request: ChatRequest | None, fault: Fault, extra: dict[str, str]) -> None:
        """A completion whose answer is ``fault.size`` letters, generated while it is sent (so
        that the server's memory stays flat): gzip-compressed, or plain with its length."""
        marker = "@@ANSWER@@"
        head, _, tail = json.dumps(self._payload(request, marker)).partition(f'"{marker}"')
        if request is None:  # a model list padded with one huge id
            head, _, tail = json.dumps(
                {"object": "list", "data": [{"id": marker, "object": "model"}]}
            ).partition(f'"{marker}"')
        block = b"A" * (1 << 20)
        parts = [head.encode() + b'"']
        remaining = fault.size
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            for name, value in extra.items():
                self.send_header(name, value)
            if fault.kind == "huge":
                total = len(parts[0]) + fault.size + len(b'"' + tail.encode())
                self.send_header("Content-Length", str(total))
                self.end_headers()
                self.wfile.write(parts[0])
                while remaining > 0:
                    step = min(remaining, len(block))
                    self.wfile.write(block[:step])
                    remaining -= step
                self.wfile.write(b'"' + tail.encode())
                return
            # No length, Connection: close: the body ends when the socket does.
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Connection", "close")
            self.end_headers()
            z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            self.wfile.write(z.compress(parts[0]))
            while remaining > 0:
                step = min(remaining, len(block))
                out = z.compress(block[:step])
                if out:
                    self.wfile.write(out)
                remaining -= step
            self.wfile.write(z.compress(b'"' + tail.encode()) + z.flush())

    def _hang_up(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def _bytes(body: str | bytes) -> bytes:
    return body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body


def _model_object(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "siuo-test"}


def _choices(result: object, n: int) -> list[Reply]:
    if isinstance(result, (str, Reply)):
        items: list[object] = [result] * n
    elif isinstance(result, list):
        if len(result) != n:
            raise _HTTPError(
                500, f"responder returned {len(result)} replies for a request with n={n}"
            )
        items = list(result)
    else:
        raise _HTTPError(
            500,
            f"responder returned {type(result).__name__}; expected str, Reply, Fault "
            "or a list of str/Reply",
        )
    replies: list[Reply] = []
    for item in items:
        if isinstance(item, str):
            replies.append(Reply(item))
        elif isinstance(item, Reply):
            replies.append(item)
        else:
            raise _HTTPError(
                500, f"responder list item is {type(item).__name__}; expected str or Reply"
            )
    return replies


def _completion(request: ChatRequest, replies: list[Reply]) -> dict[str, Any]:
    explicit = [r.prompt_tokens for r in replies if r.prompt_tokens is not None]
    # Prompt tokens are counted once per request, as OpenAI does, not once per choice.
    prompt_tokens = max(explicit) if explicit else _rough_tokens(request.text())
    completion_tokens = sum(
        r.completion_tokens if r.completion_tokens is not None else _rough_tokens(r.content or "")
        for r in replies
    )
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": r.content},
                "finish_reason": r.finish_reason,
                "logprobs": None,
            }
            for i, r in enumerate(replies)
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The listen backlog: bench scripts open 32-64 connections at once.
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakeOpenAIServer) -> None:
        self.fake = fake
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out or hung up is normal in fault tests; anything else is a bug
        # of this server and must stay visible.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, _Stopping)) or self.fake._stopping.is_set():
            return
        super().handle_error(request, client_address)


class FakeOpenAIServer:
    """An OpenAI-compatible chat-completions server on a loopback port, run in a thread.

    ``responder``, ``latency``, ``faults``, ``supports_n`` and ``params_mode`` (one of
    :data:`PARAM_MODES`) are plain attributes that may be
    changed between requests. ``requests`` and ``calls`` record what was received.

    A chat request goes through, in order: ``calls += 1``; the API-key check (401, not
    recorded); parsing (400 on a malformed body); ``requests.append``; the ``stream`` and
    ``supports_n`` and ``params_mode`` checks (400); ``latency``; the fault plan; the responder.
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        models: Sequence[str] = ("demo-model",),
        latency: float = 0.0,
        supports_n: bool = True,
        params_mode: str = "any",
        api_key: str | None = None,
        faults: FaultPlan | None = None,
        models_fault: Fault | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if latency < 0:
            raise ValueError(f"latency={latency} must be >= 0 seconds")
        self.responder = responder
        self.models = list(models)
        self.latency = latency
        self.supports_n = supports_n
        if params_mode not in PARAM_MODES:
            raise ValueError(f"params_mode={params_mode!r} is not one of {PARAM_MODES}")
        self.params_mode = params_mode
        self.api_key = api_key
        self.faults = faults
        #: How to answer ``GET /v1/models`` instead of the model list (None: the list).
        self.models_fault = models_fault
        self.host = host
        self.port = port
        self.requests: list[ChatRequest] = []
        self.calls = 0
        #: ``time.time()`` at which the first request of any kind (``GET /v1/models`` too)
        #: arrived since the start or :meth:`reset`; None before it.
        self.first_request_at: float | None = None
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()

    def __repr__(self) -> str:
        # Deliberately leaves out api_key.
        state = self.base_url if self._server is not None else "not started"
        return f"<FakeOpenAIServer {state} models={self.models}>"

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``, the ``base_url`` for the openai client."""
        if self._server is None:
            raise RuntimeError("FakeOpenAIServer.base_url is known only after start()")
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> FakeOpenAIServer:
        """Bind the port (0 = any free one) and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("FakeOpenAIServer is already started")
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-openai-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and wake sleeping handlers (idempotent)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()
        # Idle keep-alive connections would otherwise keep being served after stop().
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            with self._lock:
                if not self._connections:
                    break
            time.sleep(0.01)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def reset(self) -> None:
        """Clear ``requests``, ``calls`` and ``first_request_at``."""
        with self._lock:
            self.requests.clear()
            self.calls = 0
            self.first_request_at = None

    # -- used by the handler threads ---------------------------------------------------------

    def _arrived(self) -> None:
        if self.first_request_at is None:
            now = time.time()
            with self._lock:
                if self.first_request_at is None:
                    self.first_request_at = now

    def _count_call(self) -> None:
        with self._lock:
            self.calls += 1

    def _record(self, request: ChatRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _sleep(self, seconds: float) -> None:
        # An Event wait instead of time.sleep, so stop() does not wait for slow faults.
        if seconds > 0 and self._stopping.wait(seconds):
            raise _Stopping()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m pytest_siuo.testing.server",
        description="Offline OpenAI-compatible chat-completions server for trying pytest-siuo",
    )
    parser.add_argument("--host", default="127.0.0.1", help="Interface to bind")
    parser.add_argument("--port", type=int, default=8000, help="Port to bind (0: any free port)")
    parser.add_argument(
        "--latency", type=float, default=0.0, help="Seconds of delay per chat request"
    )
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="MODEL",
        help="Model id listed by /v1/models (repeatable; default: demo-model)",
    )
    parser.add_argument(
        "--responder",
        choices=("demo", "echo"),
        default="demo",
        help="demo: a fixed safe refusal; echo: answer with the request text",
    )
    parser.add_argument(
        "--no-n", action="store_true", help="Reject n > 1 with 400, like some vLLM/TGI setups"
    )
    parser.add_argument(
        "--params",
        choices=("any", "reasoning", "max-tokens-only"),
        default="any",
        help="reasoning: reject max_tokens and non-default temperature, like OpenAI's gpt-5 "
        "and o-series; max-tokens-only: reject max_completion_tokens, like older servers",
    )
    parser.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="Require 'Authorization: Bearer <key>' with the key read from this variable",
    )
    args = parser.parse_args(argv)
    if args.latency < 0:
        parser.error(f"--latency {args.latency} must be >= 0")
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            parser.error(f"--api-key-env {args.api_key_env}: that variable is unset or empty")
    server = FakeOpenAIServer(
        echo_responder if args.responder == "echo" else None,
        models=args.models or ["demo-model"],
        latency=args.latency,
        supports_n=not args.no_n,
        params_mode=args.params.replace("-", "_"),
        api_key=api_key,
        host=args.host,
        port=args.port,
    )
    try:
        server.start()
    except OSError as err:
        print(f"cannot bind {args.host}:{args.port}: {err}; try --port 0", file=sys.stderr)
        return 1
    print(server.base_url, flush=True)
    # SIGTERM too, so bench scripts that start the server in the background can stop it cleanly
    # (and SIGINT explicitly: a background job of a non-interactive shell inherits it ignored).
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    try:
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
