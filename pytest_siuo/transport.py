"""The HTTP transport under the ``openai`` client: a wall-clock deadline and a size cap for
each response.

httpx's timeouts bound each socket read, so a server that drips one byte a second holds a call
forever; and it inflates a gzip body without limit, so a 1 MB bomb becomes gigabytes of memory.
:class:`GuardedTransport` reads the whole response itself, inside one deadline (headers and
body), and inflates it step by step with a bounded output, stopping as soon as the decoded body
passes the cap. The client above then sees a plain, fully read response.
"""

from __future__ import annotations

import asyncio
import urllib.request
import zlib
from typing import Any

import httpx2

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "CallTimeout",
    "GuardedTransport",
    "ResponseTooLarge",
    "async_client",
]

from .settings import Settings

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
    """An httpx client for the openai client whose every transport (proxies from the
    environment included) is guarded."""
    import openai

    limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
    # No TLS on plain http: skip loading the CA bundle (tens of ms, on the loop).
    verify: bool = not plain_http

    def guarded(proxy: str | None = None) -> GuardedTransport:
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
    return openai.DefaultAsyncHttpxClient(
        transport=guarded(),
        mounts=mounts or None,
        # Reads and connects are bounded by the deadline above; the connect timeout is kept
        # shorter so that an unreachable host reads as such, not as a server that is silent.
        timeout=httpx2.Timeout(timeout, connect=min(10.0, 0.9 * timeout)),
        **kwargs,
    )
