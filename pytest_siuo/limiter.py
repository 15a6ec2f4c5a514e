"""Bounded, rate-adaptive concurrency for endpoint calls, and retry timing.

:class:`AdaptiveLimiter` is an asyncio semaphore whose size shrinks by half when the server says
"429 Too Many Requests" and grows back by about one slot per window of successful calls (AIMD, as
TCP does), so a run settles at the rate the server allows instead of hammering it.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import re
import time
from collections import deque
from collections.abc import Mapping
from types import TracebackType


class AdaptiveLimiter:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.max_limit = limit
        self._limit = float(limit)
        self.in_flight = 0
        self.peak = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def limit(self) -> int:
        return max(1, int(self._limit))

    async def __aenter__(self) -> AdaptiveLimiter:
        if self.in_flight >= self.limit or self._waiters:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut in self._waiters:
                    self._waiters.remove(fut)
                elif fut.done() and not fut.cancelled():
                    self._release()  # woken and cancelled at once: pass the slot on
                raise
        else:
            self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._release()

    def _release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            fut = self._waiters.popleft()
            if not fut.done():
                self.in_flight += 1  # the slot passes straight to the waiter
                fut.set_result(None)

    def rate_limited(self) -> None:
        """Multiplicative decrease."""
        self._limit = max(1.0, self._limit / 2)

    def succeeded(self) -> None:
        """Additive increase: about +1 slot per ``limit`` successful calls."""
        if self._limit < self.max_limit:
            self._limit = min(float(self.max_limit), self._limit + 1.0 / self._limit)
            self._wake()


def backoff_delay(
    attempt: int, *, base: float, cap: float, retry_after: float | None, rng: random.Random
) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): the server's Retry-After when it gave
    one, else exponential backoff with full jitter."""
    if retry_after is not None:
        return min(cap, retry_after + rng.uniform(0, base))
    return rng.uniform(0, min(cap, base * 2 ** (attempt - 1)))


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _seconds(value: str, now: float) -> float | None:
    """A wait in seconds from a rate-limit header value: ``"20"``, ``"1.5"``, OpenAI's
    ``"6m0s"``/``"120ms"``, an epoch timestamp, or an HTTP date."""
    text = value.strip().lower()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if number != number or number < 0:  # NaN or negative: not a wait
            return None
        # Some gateways send the reset time as a Unix timestamp instead of a delay.
        return max(0.0, number - now) if number > 1e9 else number
    parts = _DURATION.findall(text)
    if parts and "".join(n + u for n, u in parts) == text.replace(" ", ""):
        return sum(float(n) * _UNIT[u] for n, u in parts)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """How long a rate-limited server asks to wait, from whichever header it sends:
    ``retry-after-ms``, ``retry-after`` (seconds or a date), LiteLLM's
    ``llm_provider-retry-after``, or OpenAI's ``x-ratelimit-reset-requests``/``-tokens`` (the
    later of the two). None when it says nothing usable."""
    now = time.time() if now is None else now
    lower = {k.lower(): v for k, v in headers.items()}
    ms = lower.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms)
        except ValueError:
            value = -1.0
        if value >= 0:
            return value / 1000.0
    for name in ("retry-after", "llm_provider-retry-after"):
        if name in lower:
            seconds = _seconds(lower[name], now)
            if seconds is not None:
                return seconds
    resets = [
        s
        for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
        if name in lower and (s := _seconds(lower[name], now)) is not None
    ]
    return max(resets) if resets else None
