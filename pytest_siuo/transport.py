"""The HTTP client of OpenAI-compatible endpoints: a wall-clock deadline and a size cap for
each response, and the two requests the plugin makes (``POST /chat/completions``,
``GET /models``) sent as prepared bytes.

httpx's timeouts bound each socket read, so a server that drips one byte a second holds a call
forever; and it inflates a gzip body without limit, so a 1 MB bomb becomes gigabytes of memory.
:class:`GuardedTransport` reads the whole response itself, inside one deadline (headers and
body), and inflates it step by step with a bounded output, stopping as soon as the decoded body
passes the cap. The client above then sees a plain, fully read response.

:class:`APIClient` sends those requests on such a client without the ``openai`` package: the
body arrives as bytes already encoded (a sample's image is encoded once for all of its calls)
and the answer is checked by ``responses.py``. It fails the way the openai client does, in three
kinds: :class:`StatusError` (with ``status_code``, ``response``, ``body``, ``code`` and ``param``
as ``openai.APIStatusError`` has them), :class:`TimedOut` and :class:`ConnectionFailed` (the
transport's exception as its ``__cause__``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import socket
import ssl
import urllib.request
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpcore2
import httpx2

from .settings import Settings

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "APIClient",
    "CallTimeout",
    "ConnectionFailed",
    "GuardedTransport",
    "ResponseTooLarge",
    "StatusError",
    "TimedOut",
    "async_client",
]

#: A 500-token completion is a few kB; 8 MiB leaves room for n=128 long answers and verbose
#: gateways while keeping a hostile body from filling memory (--siuo-max-response-mb).
DEFAULT_MAX_RESPONSE_BYTES = int(Settings.max_response_mb * 1024 * 1024)
_STEP = 64 * 1024  # bytes inflated per step: memory stays flat whatever the ratio


class ResponseTooLarge(httpx2.TransportError):
    """The (decoded) response body passed the cap (a transport error, so that the client
    wraps it as a connection error with this as its cause)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"response body larger than {limit / 2**20:g} MB (--siuo-max-response-mb)")
        self.limit = limit


class CallTimeout(httpx2.ReadTimeout):
    """No complete response within the call's deadline (the client maps it to a timeout)."""


class _Inflater:
    """Incremental content decoding with a bounded output per step."""

    def __init__(self, encoding: str, limit: int) -> None:
        codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise httpx2.DecodingError(f"unsupported Content-Encoding {encoding!r}")
        self.coding = codings[0] if codings else None
        self.limit = limit
        self.size = 0
        self.parts: list[bytes] = []
        self._z: Any = None
        if self.coding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.coding == "deflate":
            self._z = None  # zlib-wrapped or raw: decided on the first bytes

    def _keep(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise ResponseTooLarge(self.limit)
        if data:
            self.parts.append(data)

    def feed(self, chunk: bytes) -> None:
        if self.coding is None:
            self._keep(chunk)
            return
        if self._z is None:  # deflate: RFC 1950 says zlib-wrapped, some servers send raw
            wrapped = len(chunk) >= 2 and (chunk[0] * 256 + chunk[1]) % 31 == 0
            self._z = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        data = chunk
        try:
            while data:
                out = self._z.decompress(data, _STEP)
                self._keep(out)
                data = self._z.unconsumed_tail
                if self._z.eof:
                    break
        except zlib.error as exc:
            raise httpx2.DecodingError(f"invalid {self.coding} body: {exc}") from None

    def body(self) -> bytes:
        if self._z is not None:
            try:
                self._keep(self._z.flush(_STEP))
            except zlib.error as exc:
                raise httpx2.DecodingError(f"invalid {self.coding} body: {exc}") from None
        return b"".join(self.parts)


_DROP = frozenset({"content-encoding", "content-length", "transfer-encoding"})


# --------------------------------------------------------------------------- direct route
#
# httpx's own transport over an httpcore connection pool, with one change: the pool checks
# every idle connection before each request and after each response ("has the server closed
# it?"), and anyio answers that by building all of a socket's attributes, getpeername()
# included; with dozens of idle connections that was a fifth of the client's CPU per call.
# Our network streams keep their socket and answer the check with one poll().


def _socket_readable(sock: socket.socket | None) -> bool:
    """Whether ``sock`` has data (or EOF) to read: for an idle connection, the server closed
    it. A socket that is gone counts as readable, as httpcore counts it."""
    fd = sock.fileno() if sock is not None else -1
    if fd < 0:
        return True
    if not hasattr(select, "poll"):  # pragma: no cover - Windows
        return bool(select.select([fd], [], [], 0)[0])
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class _Stream(httpcore2.AsyncNetworkStream):
    """An httpcore network stream that answers ``is_readable`` from the socket it keeps."""

    def __init__(self, inner: httpcore2.AsyncNetworkStream) -> None:
        self._inner = inner
        self._sock = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return _socket_readable(self._sock)
        return self._inner.get_extra_info(info)


class _Backend(httpcore2.AsyncNetworkBackend):
    """httpcore's anyio backend (the loop is asyncio's), its streams wrapped in _Stream."""

    def __init__(self) -> None:
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore2.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _Stream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore2.AsyncNetworkStream:  # pragma: no cover - no uds here
        return _Stream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _core_errors() -> dict[type[BaseException], type[BaseException]]:
    # httpcore's exceptions and httpx's of the same name (what httpx's transport maps).
    names = [
        "TimeoutException",
        "ConnectTimeout",
        "ReadTimeout",
        "WriteTimeout",
        "PoolTimeout",
        "NetworkError",
        "ConnectError",
        "ReadError",
        "WriteError",
        "ProxyError",
        "UnsupportedProtocol",
        "ProtocolError",
        "LocalProtocolError",
        "RemoteProtocolError",
    ]
    return {getattr(httpcore2, n): getattr(httpx2, n) for n in names}


_CORE_ERRORS = _core_errors()


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    """httpcore's exceptions raised as httpx's (the most specific class), as httpx does."""
    try:
        yield
    except Exception as exc:
        for cls in type(exc).__mro__:
            mapped = _CORE_ERRORS.get(cls)
            if mapped is not None:
                raise mapped(str(exc)) from exc
        raise


class _BodyStream(httpx2.AsyncByteStream):
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for part in self._inner:
                yield part

    async def aclose(self) -> None:
        with _httpx_errors():
            await self._inner.aclose()


class _PoolTransport(httpx2.AsyncBaseTransport):
    """``httpx2.AsyncHTTPTransport`` without a proxy, on a pool of :class:`_Backend`
    connections (same TLS context, limits and HTTP/1.1)."""

    def __init__(self, *, verify: bool, limits: httpx2.Limits) -> None:
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_Backend(),
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        assert isinstance(request.stream, httpx2.AsyncByteStream)
        core = httpcore2.Request(
            method=request.method,
            url=httpcore2.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            response = await self._pool.handle_async_request(core)
        return httpx2.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_BodyStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class GuardedTransport(httpx2.AsyncBaseTransport):
    """Wraps a transport: each response is read whole within ``timeout`` seconds and at most
    ``max_bytes`` decoded bytes, or the call fails (CallTimeout, ResponseTooLarge)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, *, timeout: float, max_bytes: int):
        self.inner = inner
        self.timeout = timeout
        self.max_bytes = max_bytes

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        # Only the codings this transport can inflate under a cap.
        request.headers["accept-encoding"] = "gzip, deflate"
        try:
            return await asyncio.wait_for(self._fetch(request), self.timeout)
        except asyncio.TimeoutError:
            raise CallTimeout(
                f"no complete response within {self.timeout:g} s", request=request
            ) from None

    async def _fetch(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        try:
            inflater = _Inflater(response.headers.get("content-encoding", ""), self.max_bytes)
            stream = response.stream
            assert isinstance(stream, httpx2.AsyncByteStream)
            async for chunk in stream:
                inflater.feed(chunk)
            body = inflater.body()
        finally:
            await response.aclose()
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _DROP]
        return httpx2.Response(
            response.status_code,
            headers=headers,
            content=body,
            request=request,
            extensions={
                k: v
                for k, v in response.extensions.items()
                if k in ("http_version", "reason_phrase")
            },
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


def async_client(
    *,
    timeout: float,
    max_bytes: int,
    auth: tuple[str, str] | None = None,
    plain_http: bool = False,
) -> httpx2.AsyncClient:
    """An httpx client whose every transport (proxies from the environment included) is
    guarded; it follows redirects, as the openai client's does."""
    limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
    # No TLS on plain http: skip loading the CA bundle (tens of ms, on the loop).
    verify: bool = not plain_http

    def guarded(proxy: str | None = None) -> GuardedTransport:
        inner: httpx2.AsyncBaseTransport
        if proxy is None:
            inner = _PoolTransport(verify=verify, limits=limits)
        else:
            inner = httpx2.AsyncHTTPTransport(verify=verify, limits=limits, proxy=proxy)
        return GuardedTransport(inner, timeout=timeout, max_bytes=max_bytes)

    # A client given its own transport ignores the proxy variables: read them here, as httpx
    # would (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY), so that every route is guarded.
    proxies = urllib.request.getproxies()
    mounts: dict[str, httpx2.AsyncBaseTransport | None] = {}
    no_proxy = [h.strip() for h in proxies.get("no", "").split(",") if h.strip()]
    if "*" not in no_proxy:
        for scheme in ("http", "https"):
            proxy = proxies.get(scheme) or proxies.get("all")
            if proxy:
                mounts[f"{scheme}://"] = guarded(proxy)
        if mounts:
            for host in no_proxy:
                # None: the client's own (guarded, direct) transport.
                mounts[f"all://*{host}" if host.startswith(".") else f"all://{host}"] = None
    kwargs: dict[str, Any] = {}
    if auth is not None:
        kwargs["auth"] = auth
    return httpx2.AsyncClient(
        transport=guarded(),
        mounts=mounts or None,
        # Reads and connects are bounded by the deadline above; the connect timeout is kept
        # shorter so that an unreachable host reads as such, not as a server that is silent.
        timeout=httpx2.Timeout(timeout, connect=min(10.0, 0.9 * timeout)),
        follow_redirects=True,
        **kwargs,
    )


# --------------------------------------------------------------------------- API client

OPENAI_BASE_URL = "https://api.openai.com/v1"


class StatusError(Exception):
    """A non-2xx answer. The attributes are those of ``openai.APIStatusError`` that the plugin
    reads: ``status_code``, ``response`` (read whole), ``body`` (the ``error`` object of a
    JSON body, else the body), ``code`` and ``param``."""

    def __init__(self, response: httpx2.Response) -> None:
        message = f"Error code: {response.status_code}"
        body: Any = None
        text = response.text.strip()
        try:
            body = json.loads(text)
        except ValueError:
            body = text
        else:
            if isinstance(body, dict):
                body = body.get("error", body)
            said = body.get("message") if isinstance(body, dict) else None
            if isinstance(said, str) and said:
                message += f" - {said}"
        super().__init__(message)
        self.response = response
        self.status_code = response.status_code
        self.body = body
        self.code: str | None = None
        self.param: str | None = None
        if isinstance(body, dict):
            code, param = body.get("code"), body.get("param")
            self.code = str(code) if code is not None else None
            self.param = param if isinstance(param, str) else None


class TimedOut(Exception):
    """No complete answer within the deadline (connect included)."""


class ConnectionFailed(Exception):
    """The request failed below HTTP; the transport's exception is the ``__cause__``."""


def _failures() -> tuple[type[BaseException], ...]:
    # What the openai client maps to APIConnectionError (anyio is httpx's own dependency).
    import anyio

    return (httpx2.RequestError, ssl.SSLError, anyio.EndOfStream)


class APIClient:
    """``POST {base}/chat/completions`` and ``GET {base}/models`` on one guarded httpx client.

    Headers are built once: ``Authorization: Bearer <key>`` (credentials in the URL go as
    Basic auth instead, through the client), the organisation and project the openai client
    would read from ``OPENAI_ORG_ID``/``OPENAI_PROJECT_ID``, and JSON content types. One per
    event loop: httpx connection pools are bound to the loop that made them.
    """

    def __init__(
        self,
        base_url: str | None,
        api_key: str,
        *,
        timeout: float,
        max_bytes: int,
        auth: tuple[str, str] | None = None,
        user_agent: str = "pytest-siuo",
    ) -> None:
        base = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL).rstrip("/")
        self._base = urlsplit(base)
        self._http = async_client(
            timeout=timeout,
            max_bytes=max_bytes,
            auth=auth,
            plain_http=self._base.scheme == "http",
        )
        headers = {
            "accept": "application/json",
            "user-agent": user_agent,
            "authorization": f"Bearer {api_key}",
        }
        for header, var in (
            ("openai-organization", "OPENAI_ORG_ID"),
            ("openai-project", "OPENAI_PROJECT_ID"),
        ):
            value = os.environ.get(var)
            if value:
                headers[header] = value
        self._headers = headers
        self._urls: dict[str, httpx2.URL] = {}

    def url(self, path: str) -> httpx2.URL:
        """``{base}{path}``, the base URL's query string kept (parsed once per path)."""
        url = self._urls.get(path)
        if url is None:
            b = self._base
            joined = urlunsplit((b.scheme, b.netloc, b.path.rstrip("/") + path, b.query, ""))
            url = self._urls[path] = httpx2.URL(joined)
        return url

    async def post_json(self, path: str, body: bytes) -> httpx2.Response:
        """POST ``body`` (JSON, already encoded); the whole response, or one of the three
        failures."""
        headers = {**self._headers, "content-type": "application/json"}
        request = httpx2.Request("POST", self.url(path), headers=headers, content=body)
        return await self._send(request)

    async def get(self, path: str) -> httpx2.Response:
        return await self._send(httpx2.Request("GET", self.url(path), headers=self._headers))

    async def _send(self, request: httpx2.Request) -> httpx2.Response:
        try:
            response = await self._http.send(request)
        except httpx2.TimeoutException:
            raise TimedOut() from None
        except _failures() as exc:
            raise ConnectionFailed() from exc
        if not response.is_success:
            raise StatusError(response)
        return response

    async def aclose(self) -> None:
        await self._http.aclose()
