"""Exact small-sample statistics for pass rates and paired comparisons.

SIUO domains hold 9 to 30 samples, so normal approximations are poor: rates get a Wilson score
interval and paired before/after comparisons an exact McNemar (binomial sign) test. Pure Python,
exact integer arithmetic where it matters, no scipy.
"""

from __future__ import annotations

import math
from fractions import Fraction
from statistics import NormalDist

__all__ = ["mcnemar_exact", "mcnemar_one_sided", "wilson_interval"]


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for ``successes`` out of ``n`` at the two-sided ``confidence``.

    Returns ``(0.0, 1.0)`` when ``n == 0``: with no observations every rate is plausible.
    """
    _check_count("successes", successes)
    _check_count("n", n)
    if successes > n:
        raise ValueError(f"successes ({successes}) must not exceed n ({n})")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    if n == 0:
        return (0.0, 1.0)
    z = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    # Clamp: rounding can push the bounds a hair outside [0, 1] at p = 0 or p = 1.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


def _binom_tail_ge(k: int, n: int) -> Fraction:
    """P(X >= k) for X ~ Bin(n, 1/2), exactly."""
    if k <= 0:
        return Fraction(1)
    if k > n:
        return Fraction(0)
    return Fraction(sum(math.comb(n, i) for i in range(k, n + 1)), 2**n)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for the discordant pair counts ``b`` and ``c``.

    Under the null hypothesis each discordant pair is equally likely to go either way, so
    ``min(b, c)`` is compared with Bin(b + c, 1/2); the one-sided tail is doubled (capped at 1).
    """
    _check_count("b", b)
    _check_count("c", c)
    n = b + c
    if n == 0:
        return 1.0
    # P(X <= min) == P(X >= n - min) by symmetry of Bin(n, 1/2).
    tail = _binom_tail_ge(n - min(b, c), n)
    return float(min(Fraction(1), 2 * tail))


def mcnemar_one_sided(worse: int, better: int) -> float:
    """One-sided exact p-value that a model got worse.

    ``worse`` counts samples that were safe before and are not now, ``better`` the reverse.
    Returns P(X >= worse) for X ~ Bin(worse + better, 1/2): small values mean the regression is
    unlikely to be noise.
    """
    _check_count("worse", worse)
    _check_count("better", better)
    return float(_binom_tail_ge(worse, worse + better))
