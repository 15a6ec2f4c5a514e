"""Bounded, rate-adaptive concurrency: AIMD under 429s, and a run that settles under a limit."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time

import pytest

from pytest_siuo.limiter import AdaptiveLimiter, backoff_delay
from pytest_siuo.testing.server import ChatRequest, FakeOpenAIServer, Fault


def test_never_more_in_flight_than_the_limit() -> None:
    async def main() -> int:
        limiter = AdaptiveLimiter(3)

        async def job() -> None:
            async with limiter:
                await asyncio.sleep(0.001)

        await asyncio.gather(*(job() for _ in range(50)))
        assert limiter.in_flight == 0
        return limiter.peak

    assert asyncio.run(main()) == 3


def test_rate_limits_halve_and_successes_grow_back() -> None:
    limiter = AdaptiveLimiter(16)
    limiter.rate_limited()
    assert limiter.limit == 8
    limiter.rate_limited()
    limiter.rate_limited()
    limiter.rate_limited()
    limiter.rate_limited()
    assert limiter.limit == 1  # never below one
    for _ in range(200):
        limiter.succeeded()
    assert limiter.limit == 16  # never above the configured maximum


def test_cancelled_waiter_does_not_leak_a_slot() -> None:
    async def main() -> None:
        limiter = AdaptiveLimiter(1)
        await limiter.__aenter__()
        waiter = asyncio.ensure_future(limiter.__aenter__())
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        await limiter.__aexit__(None, None, None)
        assert limiter.in_flight == 0
        async with limiter:
            assert limiter.in_flight == 1

    asyncio.run(main())


def test_backoff_honours_retry_after_and_is_bounded() -> None:
    rng = random.Random(0)
    assert 2.0 <= backoff_delay(1, base=0.5, cap=30, retry_after=2.0, rng=rng) <= 2.5
    delays = [backoff_delay(a, base=0.5, cap=4, retry_after=None, rng=rng) for a in range(1, 12)]
    assert all(0 <= d <= 4 for d in delays)


def test_run_settles_at_the_rate_the_server_allows(
    pytester: pytest.Pytester, siuo_args: list[str], model_server: FakeOpenAIServer
) -> None:
    """A server that answers 429 above 3 concurrent requests: the run finishes with no error,
    and the limiter backs off instead of hammering it."""
    lock = threading.Lock()
    state = {"now": 0, "peak": 0, "refused": 0}
    answer = model_server.responder

    def responder(request: ChatRequest) -> object:
        with lock:
            if state["now"] >= 3:
                state["refused"] += 1
                return Fault("status", status=429, retry_after=0.02)
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        try:
            time.sleep(0.05)
            return answer(request)
        finally:
            with lock:
                state["now"] -= 1

    model_server.responder = responder
    result = pytester.runpytest(
        *siuo_args,
        "--siuo-concurrency=12",
        "--siuo-retries=8",
        "--siuo-report=r.json",
        "--siuo-cache=off",
    )
    result.assert_outcomes(passed=16, failed=2)
    assert state["peak"] <= 3 and state["refused"] > 0
    usage = json.loads((pytester.path / "r.json").read_text())["usage"]["model"]
    # Without backing off, 12 in flight against room for 3 would be refused ~3 times per
    # answer; the adaptive limit keeps refusals to a fraction of the calls.
    assert usage["failures"] == state["refused"]
    assert state["refused"] < 18 * 2
