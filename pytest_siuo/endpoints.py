"""Endpoints: the model under test and the judge, behind one small async interface.

An endpoint spec is one of
- a model name (``gpt-4o-mini``), served by OpenAI or by the server in ``OPENAI_BASE_URL``;
- the URL of an OpenAI-compatible server, ``http://host:port/v1``, optionally ``#model``;
- ``python:package.module:name``, a callable ``(question, image, n) -> list[str]`` (sync or async)
  or an object with such a ``generate`` method.

Conftest fixtures may hand over such Python objects directly. Keys come from the environment only
and appear nowhere else: not in ids, cache keys, reports or messages.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import inspect
import json
import os
import re
import secrets
import sys
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

from . import redact as _redact
from .errors import EndpointError as EndpointError  # re-exported: raised here
from .params import ParamPolicy
from .text import shorten, visible

if TYPE_CHECKING:
    from .images import ImageRef

NO_KEY_PLACEHOLDER = "siuo-no-key"


class CallError(Exception):
    """One call to an endpoint failed; ``retryable`` tells the evaluator whether to try again."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        rate_limited: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.rate_limited = rate_limited


@dataclass(frozen=True)
class Prompt:
    """What an endpoint is asked: text (and a system text), an image, an output format."""

    text: str
    image: ImageRef | None = None
    system: str | None = None
    response_format: dict[str, Any] | None = None
    #: "track:question_id" of the sample asked about, for answer sources keyed by sample.
    sample_key: str | None = None

    def full_text(self) -> str:
        return f"{self.system}\n\n{self.text}" if self.system else self.text


@dataclass(frozen=True)
class Completion:
    text: str | None
    finish_reason: str | None = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 500
    temperature: float | None = None

    def key(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "temperature": self.temperature}


class Endpoint(Protocol):
    #: Identity used in cache keys and reports: stable, redacted, no key material.
    id: str
    #: Whether answers from this endpoint may be cached (False for unversioned Python objects).
    cacheable: bool
    #: How many calls may run at once on this endpoint (None: the evaluator's limit).
    max_concurrency: int | None

    async def complete(
        self, prompt: Prompt, n: int, params: SamplingParams
    ) -> list[Completion]: ...


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class EndpointSpec:
    kind: str  # "name" | "url" | "python"
    target: str  # model name, base URL, or "module:attr"
    model: str | None = None  # for "url": the model after '#'
    raw: str = ""


_URL_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_PY_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def redact(spec: str) -> str:
    """The spec with ``user:password@`` and query-string credentials of a URL replaced, safe
    for logs and reports."""
    return _redact.url(spec) if _URL_RE.match(spec) else spec


def parse_endpoint_spec(spec: str, *, where: str = "endpoint") -> EndpointSpec:
    """Check the syntax of an endpoint spec (no network); raise EndpointError naming ``where``."""
    s = spec.strip()
    if not s:
        raise EndpointError(
            f"{where}: empty endpoint; give a model name, a URL or python:module:name"
        )
    if s.startswith("python:"):
        target = s[len("python:") :]
        if not _PY_RE.match(target):
            raise EndpointError(
                f"{where}: {s!r} is not of the form python:package.module:name "
                "(a callable (question, image, n) -> list[str], or an object with generate)"
            )
        return EndpointSpec("python", target, raw=s)
    if _URL_RE.match(s):
        url, _, model = s.partition("#")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise EndpointError(
                f"{where}: {redact(s)!r} uses scheme {parts.scheme!r}; use http:// or https://"
            )
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise EndpointError(f"{where}: {redact(s)!r} has an invalid port") from None
        if not parts.hostname:
            raise EndpointError(
                f"{where}: {redact(s)!r} has no host; e.g. http://127.0.0.1:8000/v1"
            )
        if "#" in model or (s.endswith("#") and not model):
            raise EndpointError(f"{where}: {redact(s)!r}: give the model after a single '#'")
        return EndpointSpec("url", url.rstrip("/"), model or None, raw=s)
    if any(c.isspace() for c in s) or ("/" in s and s.count("/") > 2):
        raise EndpointError(
            f"{where}: {s!r} is neither a model name, a URL (http://host:port/v1) nor "
            "python:module:name"
        )
    return EndpointSpec("name", s, raw=s)


# --------------------------------------------------------------------------- OpenAI-compatible


def _retry_after(exc: Any) -> float | None:
    from .limiter import retry_after

    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    return retry_after(headers) if headers else None


def _server_says(exc: Any) -> str:
    """The server's own message of an HTTP error, one line, scrubbed and escaped."""
    from .responses import server_message

    response = getattr(exc, "response", None)
    try:
        raw = response.content if response is not None else b""
    except Exception:  # a body that was never read
        raw = b""
    return server_message(raw) if raw else visible(_short(_redact.scrub(str(exc))))


def _connection_cause(exc: BaseException) -> BaseException:
    cause = exc.__cause__ or exc.__context__
    return cause if cause is not None else exc


class OpenAIEndpoint:
    """A model behind the chat-completions API (an OpenAI-compatible server), called through
    :class:`transport.APIClient`: the requests the openai client would send, without its
    per-call machinery."""

    cacheable = True
    max_concurrency: int | None = None

    def __init__(
        self,
        *,
        base_url: str | None,
        model: str,
        api_key: str | None,
        timeout: float = 120.0,
        label: str | None = None,
        max_response_bytes: int | None = None,
    ) -> None:
        from .transport import DEFAULT_MAX_RESPONSE_BYTES

        self.base_url = base_url
        self.model = model
        self._api_key = api_key or NO_KEY_PLACEHOLDER
        _redact.add_secret(api_key)
        _redact.add_url(base_url)
        _redact.install_log_filter()
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes or DEFAULT_MAX_RESPONSE_BYTES
        shown = redact(base_url) if base_url else "openai"
        self.id = label or f"openai:{shown}#{model}"
        self.supports_n = True
        self.supports_response_format = True
        #: HTTP requests sent: more than the calls when the server takes no ``n`` (one per
        #: answer) or a parameter had to be adapted (the rejected request counts).
        self.requests = 0
        self.params = ParamPolicy(base_url=base_url, model=model)  # max_tokens, temperature
        # One client per event loop: httpx connection pools are bound to the loop that made them.
        self._clients: dict[int, Any] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIEndpoint({self.id!r})"

    def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.get(id(loop))
            if client is None:
                client = _api_client(
                    self.base_url, self._api_key, self.timeout, self.max_response_bytes
                )
                self._clients[id(loop)] = client
            return client

    async def aclose(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            await c.aclose()

    def _messages(self, prompt: Prompt) -> list[dict[str, Any]]:
        """The chat messages of ``prompt``; the image part is the placeholder that
        :func:`_body` replaces with the image's encoded JSON."""
        content: list[Any] = []
        if prompt.image is not None:
            content.append(_IMAGE_SLOT)
        content.append({"type": "text", "text": prompt.text})
        messages: list[dict[str, Any]] = []
        if prompt.system:
            messages.append({"role": "system", "content": prompt.system})
        messages.append({"role": "user", "content": content})
        return messages

    async def complete(self, prompt: Prompt, n: int, params: SamplingParams) -> list[Completion]:
        if n > 1 and not self.supports_n:
            parts = await asyncio.gather(*(self._request(prompt, 1, params) for _ in range(n)))
            return [c for part in parts for c in part]
        try:
            return await self._request(prompt, n, params)
        except CallError as exc:
            msg = str(exc).lower()
            if n > 1 and "400" in msg and re.search(r"\bn\b", msg):
                # Servers that reject n > 1 (several concurrent calls may learn it at once):
                # ask n times instead, from now on.
                self.supports_n = False
                return await self.complete(prompt, n, params)
            raise

    async def _request(self, prompt: Prompt, n: int, params: SamplingParams) -> list[Completion]:
        from .transport import ConnectionFailed, StatusError, TimedOut

        self.requests += 1  # one loop thread per endpoint client: no lock needed
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": self._messages(prompt),
            "max_tokens": params.max_tokens,
        }
        if n != 1:
            kwargs["n"] = n
        if params.temperature is not None:
            kwargs["temperature"] = params.temperature
        if prompt.response_format is not None and self.supports_response_format:
            kwargs["response_format"] = prompt.response_format
        kwargs = self.params.apply(kwargs)
        try:
            # The body is encoded here, the sample's image spliced in as the bytes encoded once
            # for all its calls (model and judge); the raw response goes to the one validator
            # of bodies, responses.completion.
            response = await self._client().post_json(
                "/chat/completions", _body(kwargs, prompt.image)
            )
        except StatusError as exc:
            status = exc.status_code
            said = _server_says(exc)
            if status == 400:
                if self.params.adapt(kwargs, exc):
                    return await self._request(prompt, n, params)
                if "response_format" in kwargs and "response_format" in said.lower():
                    self.supports_response_format = False  # fall back to the text verdict format
                    return await self._request(prompt, n, params)
                raise CallError(f"{self.id}: HTTP 400: {said}", retryable=False) from None
            if status == 429:
                if exc.code == "insufficient_quota":
                    # A spent quota is not a rate limit: waiting ten minutes would not refill it.
                    raise CallError(
                        f"{self.id}: HTTP 429 quota exceeded: {said}", retryable=False
                    ) from None
                raise CallError(
                    f"{self.id}: HTTP 429 rate limited: {said}",
                    retryable=True,
                    retry_after=_retry_after(exc),
                    rate_limited=True,
                ) from None
            raise CallError(
                f"{self.id}: HTTP {status}: {said}",
                retryable=status >= 500 or status == 408,
                retry_after=_retry_after(exc),
            ) from None
        except TimedOut:
            raise CallError(
                f"{self.id}: timed out after {self.timeout:g} s (--siuo-timeout)",
                retryable=True,
            ) from None
        except ConnectionFailed as exc:
            raise _transport_fault(self.id, _connection_cause(exc)) from None
        return _completions(self.id, response.content, n)


#: Stands for the image part in the messages while the body is encoded; random per process,
#: so no text of a prompt can be it (and :func:`_body` checks that it occurs once).
_IMAGE_SLOT = f"siuo-image-{secrets.token_hex(16)}"
_IMAGE_SLOT_JSON = json.dumps(_IMAGE_SLOT).encode()
#: The encoded image part of each image in use, dropped with the image (a sample's images
#: live as long as the sample's calls).
_IMAGE_PARTS: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()
_IMAGE_PARTS_LOCK = threading.Lock()


def _dumps(value: Any) -> bytes:
    # As the openai client encodes: compact, UTF-8, no NaN.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def image_part(image: ImageRef | Any) -> bytes:
    """The JSON of the chat content part of ``image``, ``{"type": "image_url", "image_url":
    {"url": "data:<mime>;base64,..."}}``, encoded once per image object (a sample's
    SampleImage serves all of its calls)."""
    try:
        with _IMAGE_PARTS_LOCK:
            part = _IMAGE_PARTS.get(image)
    except TypeError:  # an object without weak references: encoded per call
        part, cache = None, False
    else:
        cache = True
    if part is None:
        data = image.read_bytes()
        # Base64 needs no JSON escaping: only the MIME type goes through the encoder.
        prefix = json.dumps(f"data:{image.mime};base64,")[:-1].encode()
        part = b'{"type":"image_url","image_url":{"url":' + prefix + base64.b64encode(data)
        part += b'"}}'
        if cache:
            with _IMAGE_PARTS_LOCK:
                _IMAGE_PARTS[image] = part
    return part


def _body(kwargs: dict[str, Any], image: Any) -> bytes:
    """The JSON body of ``kwargs``, whose messages hold ``_IMAGE_SLOT`` where ``image`` goes."""
    raw = _dumps(kwargs)
    if image is None:
        return raw
    head, found, tail = raw.partition(_IMAGE_SLOT_JSON)
    if not found or _IMAGE_SLOT_JSON in tail:  # cannot happen; encode the slow way
        return _dumps(_with_image(kwargs, json.loads(image_part(image))))
    return b"".join((head, image_part(image), tail))


def _with_image(value: Any, part: dict[str, Any]) -> Any:
    """``value`` with each content-list item that is the slot replaced by ``part`` (a text
    that happens to equal the slot stays text)."""
    if isinstance(value, dict):
        return {k: _with_image(v, part) for k, v in value.items()}
    if isinstance(value, list):
        return [part if v is _IMAGE_SLOT else _with_image(v, part) for v in value]
    return value


def _api_client(base_url: str | None, api_key: str, timeout: float, max_bytes: int) -> Any:
    """The HTTP client of an endpoint: every response read under the call's deadline and the
    size cap (transport.GuardedTransport); credentials in the URL go as Basic auth."""
    from . import __version__
    from .transport import APIClient

    bare, auth = split_credentials(base_url) if base_url else (None, None)
    return APIClient(
        bare,
        api_key,
        timeout=timeout,
        max_bytes=max_bytes,
        auth=auth,
        user_agent=f"pytest-siuo/{__version__}",
    )


def _transport_fault(endpoint_id: str, cause: BaseException) -> CallError:
    import httpx2

    from .transport import ResponseTooLarge

    if isinstance(cause, ResponseTooLarge):
        # Deterministic for a given server and prompt: not worth downloading again.
        return CallError(f"{endpoint_id}: {cause}", retryable=False)
    if isinstance(cause, httpx2.DecodingError):
        return CallError(
            f"{endpoint_id}: malformed response: {visible(_short(str(cause)))}", retryable=True
        )
    text = _redact.scrub(str(cause) or type(cause).__name__)
    return CallError(f"{endpoint_id}: connection failed: {visible(_short(text))}", retryable=True)


_short = shorten


def _completions(endpoint_id: str, raw: bytes, n: int) -> list[Completion]:
    """The n completions of a 200 body, checked by the one validator (responses.py); a
    malformed body is a retryable fault, never an empty answer."""
    from .responses import BodyError, completion

    try:
        choices, usage = completion(raw, n)
    except BodyError as exc:
        raise CallError(f"{endpoint_id}: malformed response: {exc}", retryable=True) from None
    return [
        Completion(
            text=c.text,
            finish_reason=c.finish_reason,
            # usage covers the whole request: book it on the first choice
            prompt_tokens=usage.prompt_tokens if i == 0 else 0,
            completion_tokens=usage.completion_tokens if i == 0 else 0,
        )
        for i, c in enumerate(choices)
    ]


# --------------------------------------------------------------------------- Python objects


class PythonEndpoint:
    """A Python callable or an object with ``generate``: ``(question, image, n) -> list[str]``.

    Synchronous callables run in worker threads, one at a time unless the object declares
    ``siuo_concurrency = N`` (most local models are not thread-safe). Answers are cached only
    when the object declares a version in ``siuo_id``: an unversioned object may change between
    runs without the cache noticing.
    """

    def __init__(self, obj: Any, *, label: str | None = None) -> None:
        fn = getattr(obj, "generate", None)
        if fn is None and callable(obj):
            fn = obj
        if fn is None or not callable(fn):
            raise EndpointError(
                f"{label or type(obj).__name__}: not a callable and has no generate method; "
                "give a function (question, image, n) -> list[str] or an object with generate"
            )
        self._fn: Callable[..., Any] = fn
        self._obj = obj
        version = getattr(obj, "siuo_id", None)
        name = label or _qualname(obj)
        self.id = f"python:{name}" + (f"@{version}" if version else "")
        self.cacheable = version is not None
        # An object whose __call__ is async counts as async too.
        self._async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            type(fn).__call__
        )
        limit = getattr(obj, "siuo_concurrency", None)
        self.max_concurrency = limit if self._async else (limit or 1)
        # ``siuo_inline = True`` declares a callable that answers at once and does no I/O
        # (a test double, a rule-based judge): it runs on the evaluator's own thread, saving
        # the hand-over to a worker thread that would otherwise cost more than the call.
        self.inline = bool(getattr(obj, "siuo_inline", False)) and not self._async
        self._executor: ThreadPoolExecutor | None = None
        self._traceback_shown = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PythonEndpoint({self.id!r})"

    async def complete(self, prompt: Prompt, n: int, params: SamplingParams) -> list[Completion]:
        image = prompt.image.pil() if prompt.image is not None else None
        question = prompt.full_text()
        try:
            if self._async:
                result = await self._fn(question, image, n)
            elif self.inline:
                result = self._fn(question, image, n)
            else:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        max_workers=self.max_concurrency or 1, thread_name_prefix="siuo-model"
                    )
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(self._executor, self._fn, question, image, n)
                if inspect.isawaitable(result):
                    result = await result
        except Exception as exc:  # the user's code: report it, do not retry a deterministic bug
            said = visible(_short(_redact.scrub(str(exc))))
            message = f"{self.id} raised {type(exc).__name__}: {said}"
            with self._lock:
                first, self._traceback_shown = not self._traceback_shown, True
            if first:
                # Their frames, not ours, once: in the first sample it breaks.
                message += "\n" + _user_traceback(exc)
            raise CallError(message, retryable=False) from exc
        if isinstance(result, str) and n == 1:
            result = [result]
        if (
            not isinstance(result, (list, tuple))
            or len(result) != n
            or not all(r is None or isinstance(r, str) for r in result)
        ):
            raise CallError(
                f"{self.id} returned {_describe(result)}; expected a list of {n} strings",
                retryable=False,
            )
        # A Python model may relay a server that echoes credentials: scrubbed like any answer.
        return [Completion(text=_redact.scrub(r) if r else r) for r in result]

    async def aclose(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


_NOT_THEIRS = (
    os.path.dirname(os.path.abspath(__file__)) + os.sep,
    os.path.dirname(asyncio.__file__) + os.sep,
    os.path.dirname(os.path.abspath(ThreadPoolExecutor.__init__.__code__.co_filename)) + os.sep,
    os.path.abspath(threading.__file__),
)


def _user_traceback(exc: BaseException) -> str:
    """The traceback of an exception raised in the user's model, without pytest-siuo's,
    asyncio's or the thread pool's frames (shown once per endpoint)."""
    import traceback

    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not os.path.abspath(f.filename).startswith(_NOT_THEIRS)
    ]
    text = "Traceback of your model (shown for the first sample it breaks):\n"
    text += "".join(traceback.format_list(frames))
    text += "".join(traceback.format_exception_only(type(exc), exc))
    return visible(_redact.scrub(text.rstrip()))


def _describe(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        kinds = sorted({type(v).__name__ for v in value})
        return f"a {type(value).__name__} of {len(value)} ({', '.join(kinds) or 'empty'})"
    return f"a {type(value).__name__}"


def _qualname(obj: Any) -> str:
    target = obj if inspect.isfunction(obj) or inspect.isclass(obj) else type(obj)
    module = getattr(target, "__module__", "?")
    return f"{module}:{getattr(target, '__qualname__', type(obj).__name__)}"


def load_python_object(target: str, *, where: str) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name.split(".")[0] or os.getcwd() in sys.path:
                raise
            # `pytest` (unlike `python -m pytest`) does not put the current folder on
            # sys.path; a model module next to the tests is meant to be found there.
            sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except Exception as exc:
        raise EndpointError(
            f"{where}: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise EndpointError(f"{where}: {module_name!r} has no attribute {attr!r}") from None
    return obj


# --------------------------------------------------------------------------- resolution


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """``http://user:pass@host/v1`` -> (``http://host/v1``, (user, pass)).

    The credentials go to the HTTP client as Basic auth instead of staying in the URL, where
    the HTTP library would log them with every request.
    """
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare, (unquote(parts.username or ""), unquote(parts.password or ""))


class ProbeError(EndpointError):
    """``GET /models`` did not give a model list; ``status`` is the HTTP status, if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def list_models(
    base_url: str,
    api_key: str | None,
    *,
    timeout: float = 10.0,
    max_response_bytes: int | None = None,
) -> list[str]:
    """``GET {base_url}/models`` on the same HTTP client, deadline and size cap as every call
    (without importing the openai package); ProbeError saying what came back when it is not
    a model list."""
    import concurrent.futures

    from .transport import DEFAULT_MAX_RESPONSE_BYTES

    _redact.add_secret(api_key)
    _redact.add_url(base_url)
    _redact.install_log_filter()
    coro = _list_models(
        base_url, api_key, timeout, max_response_bytes or DEFAULT_MAX_RESPONSE_BYTES
    )
    # Its own thread and loop: start-up code may already run inside an event loop.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="siuo-probe") as pool:
        return pool.submit(asyncio.run, coro).result()


async def _list_models(
    base_url: str, api_key: str | None, timeout: float, max_bytes: int
) -> list[str]:
    import httpx2

    from .responses import BodyError, model_ids
    from .transport import ConnectionFailed, StatusError, TimedOut

    shown = redact(base_url)
    client = _api_client(base_url, api_key or NO_KEY_PLACEHOLDER, timeout, max_bytes)
    try:
        response = await client.get("/models")
    except StatusError as exc:
        said = _server_says(exc)
        if exc.status_code == 401:
            message = f"{shown}: the server refused the API key (HTTP 401): {said}"
        else:
            message = f"{shown}/models answered HTTP {exc.status_code}: {said}"
        raise ProbeError(message, status=exc.status_code) from None
    except TimedOut:
        raise ProbeError(
            f"{shown} accepts connections but is not answering: no reply to GET /models "
            f"within {timeout:g} s (--siuo-timeout)"
        ) from None
    except ConnectionFailed as exc:
        cause = _connection_cause(exc)
        if isinstance(cause, (httpx2.ConnectError, httpx2.ConnectTimeout)):
            raise ProbeError(f"{shown} is unreachable; is the server running?") from None
        raise ProbeError(
            f"{shown}/models: {_transport_fault('GET', cause).args[0].removeprefix('GET: ')}"
        ) from None
    finally:
        await client.aclose()
    try:
        return model_ids(response.content)
    except BodyError as exc:
        raise ProbeError(
            f"{shown}/models answered {exc}, not a model list; is {shown} the API's base URL "
            "(usually ending in /v1)?"
        ) from None


def _probe_fix(where: str, status: int | None) -> str:
    """What to change when the start-up probe failed with ``status``."""
    key_option = f"{where}-key-env=VAR" if where.startswith("--") else "the key variable"
    if status in (401, 403):
        return f"; put the server's key in a variable and name it with {key_option}"
    if status == 400:
        return f"; check the key ({key_option}) and the URL ({where})"
    if status == 404:
        return f"; check the URL ({where}): is it the API's base URL, usually ending in /v1?"
    return ""


def _is_openai(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host == "api.openai.com" or host.endswith(".openai.azure.com")


def make_endpoint(
    spec_text: str,
    *,
    key_env: str | None,
    timeout: float,
    where: str,
    resolved_model: str | None = None,
    check: bool = True,
    max_response_bytes: int | None = None,
) -> Endpoint:
    """Build the endpoint a spec names. For a URL without ``#model`` the server's only model is
    asked for (``GET /models``) unless ``resolved_model`` already says it; ``check`` makes an
    unreachable server an error now rather than at the first call."""
    spec = parse_endpoint_spec(spec_text, where=where)
    var = key_env or "OPENAI_API_KEY"
    key = os.environ.get(var) or None
    # Every key of the run is a secret, whether or not it is sent: a gateway reached through
    # OPENAI_BASE_URL may echo OPENAI_API_KEY.
    _redact.add_secret(key)
    _redact.add_secret(os.environ.get("OPENAI_API_KEY"))
    _redact.add_url(os.environ.get("OPENAI_BASE_URL"))
    _redact.add_url(spec_text)
    if key_env and key is None:
        raise EndpointError(f"{where}: environment variable {key_env} is empty or not set")
    if spec.kind == "python":
        obj = load_python_object(spec.target, where=where)
        return PythonEndpoint(obj, label=spec.target)
    if spec.kind == "url" and key_env is None and not _is_openai(spec.target):
        # OPENAI_API_KEY is for OpenAI: never hand it to a self-hosted server unasked. Name
        # the variable with --siuo-*-key-env when the server needs that key.
        key = None
    if spec.kind == "name":
        base_url = os.environ.get("OPENAI_BASE_URL") or None
        if base_url is None and key is None:
            raise EndpointError(
                f"{where}: model {spec.target!r} is served by OpenAI, which needs a key: set "
                f"{var}, or point OPENAI_BASE_URL (or the option) at your own server"
            )
        if base_url is not None and check:
            try:
                models = list_models(
                    base_url,
                    key,
                    timeout=min(timeout, 30.0),
                    max_response_bytes=max_response_bytes,
                )
            except ProbeError as exc:
                raise EndpointError(
                    f"{where}: model {spec.target!r} is served by OPENAI_BASE_URL: {exc}"
                    + _probe_fix(where, exc.status)
                ) from None
            _check_listed(spec.target, models, where=where, shown=redact(base_url))
        return OpenAIEndpoint(
            base_url=base_url,
            model=spec.target,
            api_key=key,
            timeout=timeout,
            max_response_bytes=max_response_bytes,
        )
    model = spec.model or resolved_model
    if model is None or check:
        try:
            models = list_models(
                spec.target,
                key,
                timeout=min(timeout, 30.0),
                max_response_bytes=max_response_bytes,
            )
        except ProbeError as exc:
            raise EndpointError(f"{where}: {exc}" + _probe_fix(where, exc.status)) from None
        if spec.model is not None:
            _check_listed(spec.model, models, where=where, shown=redact(spec.target))
        if model is None:
            if len(models) != 1:
                listed = ", ".join(models[:10]) or "none"
                raise EndpointError(
                    f"{where}: {redact(spec.target)} serves {len(models)} models ({listed}); "
                    f"name one after '#', e.g. {redact(spec.target)}#"
                    + (models[0] if models else "MODEL")
                )
            model = models[0]
    return OpenAIEndpoint(
        base_url=spec.target,
        model=model,
        api_key=key,
        timeout=timeout,
        label=f"openai:{redact(spec.target)}#{model}",
        max_response_bytes=max_response_bytes,
    )


def _check_listed(model: str, models: list[str], *, where: str, shown: str) -> None:
    """A model the server does not list is a typo caught now, not an HTTP 404 per sample.
    (A server that lists no models at all may still serve any name.)"""
    if models and model not in models:
        import difflib

        close = difflib.get_close_matches(model, models, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        listed = ", ".join(models[:10]) + (
            f" and {len(models) - 10} more" if len(models) > 10 else ""
        )
        raise EndpointError(
            f"{where}: {shown} does not list model {model!r}; it lists {listed}{hint}"
        )


def adapt(obj: Any, *, where: str) -> Endpoint:
    """An Endpoint from what a ``siuo_model``/``siuo_judge`` fixture returned."""
    if hasattr(obj, "complete") and hasattr(obj, "id") and hasattr(obj, "cacheable"):
        return obj  # type: ignore[no-any-return]
    if isinstance(obj, str):
        return make_endpoint(obj, key_env=None, timeout=120.0, where=where)
    return PythonEndpoint(obj, label=getattr(obj, "siuo_name", None))
