"""Exact small-sample statistics for pass rates and paired comparisons.

SIUO domains hold 9 to 30 samples, so normal approximations are poor: rates get a Wilson score
interval and paired before/after comparisons an exact McNemar (binomial sign) test; the judge
self-check's pooled limit comes from exact binomial refusal probabilities. Pure Python, exact
integer arithmetic where it matters, no scipy. The baseline gate's answer-level test is in
stratified.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from statistics import NormalDist

__all__ = [
    "binomial_pmf",
    "mcnemar_exact",
    "mcnemar_one_sided",
    "pooled_limit",
    "refusal_probability",
    "wilson_interval",
]


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


def binomial_pmf(n: int, p: float) -> list[float]:
    """P(X = k) for k = 0..n, X ~ Bin(n, p)."""
    _check_count("n", n)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p!r}")
    return [math.comb(n, k) * p**k * (1.0 - p) ** (n - k) for k in range(n + 1)]


def refusal_probability(
    sizes: Sequence[int], allowed: Sequence[int], pooled_allowed: int, error_rate: float
) -> float:
    """Probability that a check refuses a rater who errs on each item with ``error_rate``.

    Group ``d`` has ``sizes[d]`` items and refuses above ``allowed[d]`` errors; all groups
    together refuse above ``pooled_allowed`` errors. Exact: the groups' binomial counts are
    convolved, keeping only the outcomes where no group refused.
    """
    if len(sizes) != len(allowed):
        raise ValueError("sizes and allowed must have one entry per group")
    passing = [1.0]  # passing[t]: P(no group refused so far and t errors in all)
    for size, limit in zip(sizes, allowed, strict=True):
        pmf = binomial_pmf(size, error_rate)[: max(0, limit) + 1]
        out = [0.0] * (len(passing) + len(pmf) - 1)
        for i, a in enumerate(passing):
            for j, b in enumerate(pmf):
                out[i + j] += a * b
        passing = out
    return max(0.0, 1.0 - math.fsum(passing[: max(0, pooled_allowed) + 1]))


def pooled_limit(
    sizes: Sequence[int], allowed: Sequence[int], *, error_rate: float, refusal: float
) -> int:
    """The smallest pooled count of errors above which to refuse, such that a rater erring
    with ``error_rate`` is refused at most ``refusal`` of the time (per-group limits included);
    ``sum(sizes)`` when even no pooled limit keeps the refusal that low."""
    total = sum(sizes)
    for limit in range(total + 1):
        if refusal_probability(sizes, allowed, limit, error_rate) <= refusal:
            return limit
    return total
