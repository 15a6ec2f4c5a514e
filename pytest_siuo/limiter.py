"""Bounded, rate-adaptive concurrency for endpoint calls, and retry timing.

:class:`AdaptiveLimiter` is an asyncio semaphore whose size shrinks by half when the server says
"429 Too Many Requests" and grows back by about one slot per window of successful calls (AIMD, as
TCP does), so a run settles at the rate the server allows instead of hammering it.

:class:`SlotPool` shares a whole run's calls in flight between processes (pytest-xdist workers):
each worker owns its share of the slots and borrows the others' while they are idle, so the
run never has more calls in flight than its limit, and a worker whose samples are done leaves
its share to the workers that still have some.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar


class AdaptiveLimiter:
    """At most ``limit`` calls in flight in this process (fewer while the server says 429);
    with a ``pool``, each call also holds one of the run's slots shared with other processes."""

    def __init__(self, limit: int, pool: SlotPool | None = None) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.max_limit = limit
        self._limit = float(limit)
        self.in_flight = 0
        self.peak = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.pool = pool
        self._slot_waiters: deque[asyncio.Future[int]] = deque()
        self._slots: dict[asyncio.Task[Any] | None, list[int]] = {}
        self._poller: asyncio.Task[None] | None = None

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
        if self.pool is not None:
            try:
                slot = await self._take_slot()
            except BaseException:
                self._release()
                raise
            self._slots.setdefault(asyncio.current_task(), []).append(slot)
        self.peak = max(self.peak, self.in_flight)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.pool is not None:
            task = asyncio.current_task()
            held = self._slots.get(task)
            if held:
                self._give_slot(held.pop())
                if not held:
                    del self._slots[task]
        self._release()

    # -- the slots shared with other processes

    async def _take_slot(self) -> int:
        assert self.pool is not None
        if not self._slot_waiters:
            slot = self.pool.take()
            if slot is not None:
                return slot
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._slot_waiters.append(fut)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        try:
            return await fut
        except asyncio.CancelledError:
            if fut in self._slot_waiters:
                self._slot_waiters.remove(fut)
            elif fut.done() and not fut.cancelled():
                self._give_slot(fut.result())  # handed over and cancelled at once: pass it on
            raise

    def _hand_over(self, slot: int) -> bool:
        while self._slot_waiters:
            fut = self._slot_waiters.popleft()
            if not fut.done():
                fut.set_result(slot)
                return True
        return False

    def _give_slot(self, slot: int) -> None:
        """A call ended: a slot of this process's own share goes straight to a call waiting
        here; a borrowed one goes back, so that its owner can have it."""
        assert self.pool is not None
        if self.pool.owns(slot) and self._hand_over(slot):
            return
        self.pool.give_back(slot)

    async def _poll(self) -> None:
        """While calls wait for a slot: take the slots that other processes free."""
        assert self.pool is not None
        while self._slot_waiters:
            slot = self.pool.take()
            if slot is None:
                await asyncio.sleep(self.pool.poll_interval)
            elif not self._hand_over(slot):
                self.pool.give_back(slot)

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


@dataclass(frozen=True)
class SlotSpec:
    """Where a run's shared slots live and which share of them this process owns."""

    folder: str
    index: int
    count: int


class SlotPool:
    """``size`` call slots shared by the processes of one run: slot ``i`` is byte ``i`` of a
    file, held with an exclusive ``fcntl`` record lock. The kernel frees a dead process's
    locks, so a crashed worker never keeps slots. This process owns slots
    ``[start, start + share)``: it tries them first and keeps them for its own waiting calls;
    it borrows any other free slot and gives it back after one call.

    POSIX record locks belong to the process, not to a file descriptor or thread, and closing
    any descriptor of the file drops them all: so one pool (one descriptor) per file per
    process (:meth:`shared`), and this process's held slots are tracked here.
    """

    poll_interval = 0.005  # seconds between looks for a slot another process freed

    _pools: ClassVar[dict[str, SlotPool]] = {}
    _pools_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: str, size: int, start: int, share: int) -> None:
        import fcntl

        self._fcntl = fcntl
        self.size = size
        self._own = range(start, start + share)
        self._order: list[int] = [*self._own, *(i for i in range(size) if i not in self._own)]
        self._held: set[int] = set()
        self._lock = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    @classmethod
    def shared(cls, spec: SlotSpec | None, role: str, size: int) -> SlotPool | None:
        """This process's pool of ``role``'s slots (one per file), or None: without a spec
        (no xdist), or where record locks are not to be had (then each worker keeps to a
        fixed share of the limit, see :func:`pytest_siuo.distribution.share`)."""
        if spec is None:
            return None
        from .distribution import share

        path = os.path.join(spec.folder, f"{role}.slots")
        with cls._pools_lock:
            pool = cls._pools.get(path)
            if pool is None:
                start = sum(share(size, spec.count, i) for i in range(spec.index))
                try:
                    pool = cls(path, size, start, share(size, spec.count, spec.index))
                except (ImportError, OSError):
                    return None
                cls._pools[path] = pool
            return pool

    def owns(self, slot: int) -> bool:
        return slot in self._own

    def take(self) -> int | None:
        """A free slot, now held by this process (own ones first), or None."""
        with self._lock:
            for slot in self._order:
                if slot in self._held:
                    continue
                try:
                    self._fcntl.lockf(
                        self._fd, self._fcntl.LOCK_EX | self._fcntl.LOCK_NB, 1, slot, os.SEEK_SET
                    )
                except OSError:
                    continue  # held by another process
                self._held.add(slot)
                return slot
            return None

    def give_back(self, slot: int) -> None:
        with self._lock:
            if slot in self._held:
                self._fcntl.lockf(self._fd, self._fcntl.LOCK_UN, 1, slot, os.SEEK_SET)
                self._held.discard(slot)

    @property
    def held(self) -> int:
        return len(self._held)


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
