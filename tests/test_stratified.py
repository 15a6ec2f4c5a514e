"""The exact stratified test and the min-P adjustment, checked against brute-force enumeration
with fractions and against scipy where scipy has the same test."""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import pytest
from scipy import stats as scipy_stats

from pytest_siuo.records import Votes
from pytest_siuo.stratified import (
    Stratum,
    drop_estimate,
    gate_levels,
    min_p_adjust,
    pool,
    stratified_test,
)


def _exact_pmf(s: Stratum) -> dict[int, Fraction]:
    total, unsafe, drawn = s.answers, s.unsafe, s.run_answers
    return {
        k: Fraction(
            math.comb(drawn, k) * math.comb(total - drawn, unsafe - k), math.comb(total, unsafe)
        )
        for k in range(0, drawn + 1)
        if 0 <= unsafe - k <= total - drawn
    }


def _joint(strata: list[Stratum]) -> dict[int, Fraction]:
    """Null distribution of the sum by enumerating every combination of per-sample counts."""
    pmfs = [_exact_pmf(s) for s in strata]
    joint: dict[int, Fraction] = {}
    for combo in itertools.product(*[list(p.items()) for p in pmfs]):
        t = sum(k for k, _ in combo)
        joint[t] = joint.get(t, Fraction(0)) + math.prod((q for _, q in combo), start=Fraction(1))
    return joint


def _random_strata(rng: random.Random, count: int, max_n: int = 6) -> list[Stratum]:
    out = []
    for _ in range(count):
        n0, n1 = rng.randint(0, max_n), rng.randint(0, max_n)
        out.append(Stratum(n0, rng.randint(0, n0), n1, rng.randint(0, n1)))
    return out


@pytest.mark.parametrize("seed", range(40))
def test_p_values_match_brute_force_enumeration(seed: int) -> None:
    rng = random.Random(seed)
    strata = _random_strata(rng, rng.randint(1, 5))
    test = stratified_test(strata)
    informative = [s for s in strata if s.informative]
    joint = _joint(informative) if informative else {0: Fraction(1)}
    observed = sum(s.run_unsafe for s in informative)
    assert test.statistic == observed
    worse = sum(q for t, q in joint.items() if t >= observed)
    better = sum(q for t, q in joint.items() if t <= observed)
    assert test.p_worse == pytest.approx(float(worse), rel=1e-12, abs=1e-300)
    assert test.p_better == pytest.approx(float(better), rel=1e-12, abs=1e-300)
    mean = sum(t * q for t, q in joint.items()) if informative else 0
    assert test.expected == pytest.approx(float(mean), rel=1e-12, abs=1e-12)
    # Every attainable statistic, not only the observed one.
    for t in range(test.null.low - 1, test.null.high + 2):
        assert test.null.p_worse(t) == pytest.approx(
            float(sum(q for u, q in joint.items() if u >= t)), rel=1e-12, abs=1e-300
        )


def test_uninformative_samples_drop_out() -> None:
    # All safe, all not safe, or one side without answers: the margins fix the count.
    strata = [Stratum(20, 0, 5, 0), Stratum(20, 20, 5, 5), Stratum(0, 0, 5, 5), Stratum(3, 1, 0, 0)]
    test = stratified_test(strata)
    assert (test.samples, test.statistic, test.p_worse, test.p_better) == (0, 0, 1.0, 1.0)
    assert not any(s.informative for s in strata)


@pytest.mark.parametrize(
    ("base_n", "base_u", "run_n", "run_u"),
    [(3, 0, 3, 3), (3, 1, 3, 2), (20, 2, 5, 3), (20, 0, 5, 1), (5, 4, 20, 3), (10, 5, 10, 9)],
)
def test_one_sample_is_the_hypergeometric_tail_and_fisher_one_sided(
    base_n: int, base_u: int, run_n: int, run_u: int
) -> None:
    test = stratified_test([Stratum(base_n, base_u, run_n, run_u)])
    total, unsafe = base_n + run_n, base_u + run_u
    expected = scipy_stats.hypergeom.sf(run_u - 1, total, unsafe, run_n)
    assert test.p_worse == pytest.approx(expected, rel=1e-10)
    table = [[run_u, run_n - run_u], [base_u, base_n - base_u]]
    assert test.p_worse == pytest.approx(
        scipy_stats.fisher_exact(table, alternative="greater").pvalue, rel=1e-10
    )
    assert test.p_better == pytest.approx(
        scipy_stats.fisher_exact(table, alternative="less").pvalue, rel=1e-10
    )


def test_many_samples_match_scipy_convolution() -> None:
    # A domain of 20 samples at 20 baseline and 5 run answers: too big to enumerate.
    rng = random.Random(7)
    strata = [Stratum(20, rng.randint(0, 20), 5, rng.randint(0, 5)) for _ in range(20)]
    test = stratified_test(strata)
    informative = [s for s in strata if s.informative]
    dist = [1.0]
    low = 0
    for s in informative:
        ks = range(s.low, min(s.run_answers, s.unsafe) + 1)
        pmf = scipy_stats.hypergeom.pmf(list(ks), s.answers, s.unsafe, s.run_answers)
        low += s.low
        new = [0.0] * (len(dist) + len(pmf) - 1)
        for i, a in enumerate(dist):
            for j, b in enumerate(pmf):
                new[i + j] += a * b
        dist = new
    observed = test.statistic
    assert test.p_worse == pytest.approx(sum(dist[observed - low :]), rel=1e-9)
    assert sum(test.null.pmf) == pytest.approx(1.0, abs=1e-12)


def test_pool_is_the_test_of_all_samples() -> None:
    rng = random.Random(3)
    a, b = _random_strata(rng, 4), _random_strata(rng, 3)
    pooled = pool([stratified_test(a), stratified_test(b)])
    direct = stratified_test(a + b)
    assert (pooled.statistic, pooled.samples) == (direct.statistic, direct.samples)
    assert pooled.p_worse == pytest.approx(direct.p_worse, rel=1e-12)
    assert pooled.expected == pytest.approx(direct.expected, rel=1e-12)


def test_votes_no_answer_is_not_safe_and_errors_leave_the_table() -> None:
    base = Votes(safe=15, unsafe=2, no_answer=1, error=2)
    run = Votes(safe=1, unsafe=1, no_answer=2, error=1)
    assert Stratum.from_votes(base, run) == Stratum(18, 3, 4, 3)


def test_bad_tables_are_refused() -> None:
    with pytest.raises(ValueError, match="not-safe answers exceed"):
        Stratum(3, 4, 3, 0)
    with pytest.raises(ValueError, match="non-negative integer"):
        Stratum(3, -1, 3, 0)


def test_attained_size_never_exceeds_the_level() -> None:
    rng = random.Random(11)
    for _ in range(30):
        test = stratified_test(_random_strata(rng, 4))
        for level in (0.0, 0.001, 0.01, 0.04, 0.05, 0.2, 0.5, 1.0):
            size = test.null.size_worse(level)
            assert size <= level * (1 + 1e-9)
            # It is the null probability of the rejection region {t: p_worse(t) <= level}.
            region = sum(
                q
                for i, q in enumerate(test.null.pmf)
                if test.null.p_worse(test.null.low + i) <= level * (1 + 1e-9)
            )
            assert size == pytest.approx(region, abs=1e-12)
            region_b = sum(
                q
                for i, q in enumerate(test.null.pmf)
                if test.null.p_better(test.null.low + i) <= level * (1 + 1e-9)
            )
            assert test.null.size_better(level) == pytest.approx(region_b, abs=1e-12)


def _adjusted_by_enumeration(domains: dict[str, list[Stratum]]) -> dict[str, float]:
    """P(min_j P_j <= p_d) by enumerating the joint null of every domain's statistic."""
    tests = {name: stratified_test(strata) for name, strata in domains.items()}
    out = {}
    for name, test in tests.items():
        p_d = test.p_worse
        survive = Fraction(1)
        for other in tests.values():
            null = other.null
            below = sum(
                Fraction(q)
                for i, q in enumerate(null.pmf)
                if null.p_worse(null.low + i) <= p_d * (1 + 1e-9)
            )
            survive *= 1 - below
        out[name] = float(1 - survive)
    return out


@pytest.mark.parametrize("seed", range(10))
def test_min_p_adjustment_is_the_joint_min_p_probability(seed: int) -> None:
    rng = random.Random(100 + seed)
    domains = {f"d{i}": _random_strata(rng, rng.randint(1, 4)) for i in range(3)}
    adjusted = min_p_adjust({k: stratified_test(v) for k, v in domains.items()})
    expected = _adjusted_by_enumeration(domains)
    for name in domains:
        assert adjusted[name] == pytest.approx(expected[name], rel=1e-9, abs=1e-15)
        assert adjusted[name] >= stratified_test(domains[name]).p_worse


def test_min_p_controls_the_family_wise_error_exactly() -> None:
    # Three small domains under the null: the exact probability that any domain is rejected
    # at adjusted p <= a, over every outcome of the conditional null, is at most a.
    domains = {
        "a": [Stratum(3, 1, 3, 1), Stratum(3, 2, 3, 1), Stratum(4, 1, 2, 1)],
        "b": [Stratum(5, 2, 5, 2), Stratum(2, 1, 3, 1)],
        "c": [Stratum(6, 3, 6, 3)],
    }
    ranges = {
        name: [list(range(s.low, min(s.run_answers, s.unsafe) + 1)) for s in strata]
        for name, strata in domains.items()
    }
    outcomes = {name: list(itertools.product(*r)) for name, r in ranges.items()}
    pmfs = {name: [_exact_pmf(s) for s in strata] for name, strata in domains.items()}
    for level in (0.04, 0.1, 0.3):
        false_alarm = Fraction(0)
        for combo in itertools.product(*outcomes.values()):
            prob = Fraction(1)
            tests = {}
            for name, ks in zip(domains, combo, strict=True):
                strata = [
                    Stratum(s.base_answers, s.unsafe - k, s.run_answers, k)
                    for s, k in zip(domains[name], ks, strict=True)
                ]
                tests[name] = stratified_test(strata)
                for pmf, k in zip(pmfs[name], ks, strict=True):
                    prob *= pmf[k]
            if any(p <= level for p in min_p_adjust(tests).values()):
                false_alarm += prob
        assert float(false_alarm) <= level * (1 + 1e-9)


def test_a_domain_that_cannot_reach_small_p_costs_the_others_nothing() -> None:
    strong = [Stratum(20, 0, 5, 3) for _ in range(3)]
    weak = [Stratum(3, 1, 3, 2)]  # its smallest p-value is 1/20
    alone = min_p_adjust({"strong": stratified_test(strong)})["strong"]
    together = min_p_adjust({"strong": stratified_test(strong), "weak": stratified_test(weak)})[
        "strong"
    ]
    assert together == pytest.approx(alone, rel=1e-12)
    # Bonferroni would have doubled it.
    assert together < 2 * alone


def test_gate_levels_split_alpha() -> None:
    family, overall = gate_levels(0.05)
    assert (family, overall) == (pytest.approx(0.04), pytest.approx(0.01))
    with pytest.raises(ValueError, match="alpha"):
        gate_levels(1.5)


def test_drop_estimate_and_interval() -> None:
    strata = [Stratum(20, 2, 5, 3), Stratum(20, 0, 5, 0), Stratum(0, 0, 5, 5)]
    est = drop_estimate(strata)
    assert est is not None
    assert est.samples == 2  # the third has no baseline answers
    assert est.drop == pytest.approx(((3 / 5 - 2 / 20) + 0.0) / 2)
    assert est.low < est.drop < est.high
    assert drop_estimate([Stratum(0, 0, 5, 1)]) is None
    # Unchanged answers: an interval around 0.
    same = drop_estimate([Stratum(5, 1, 5, 1)] * 10)
    assert same is not None and same.drop == 0.0 and same.low < 0.0 < same.high


def test_importing_the_comparison_does_not_import_numpy() -> None:
    # numpy is needed only when a baseline is compared: the plugin's start-up stays light.
    import subprocess
    import sys

    code = "import sys, pytest_siuo.baseline; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(("worse", "better"), [(0, 0), (3, 0), (4, 1), (6, 6), (9, 2)])
def test_one_answer_per_run_is_the_exact_sign_test(worse: int, better: int) -> None:
    from pytest_siuo.stats import mcnemar_one_sided

    strata = (
        [Stratum(1, 0, 1, 1)] * worse  # safe then, not safe now
        + [Stratum(1, 1, 1, 0)] * better
        + [Stratum(1, 0, 1, 0), Stratum(1, 1, 1, 1)]  # unchanged: no information
    )
    test = stratified_test(strata)
    assert test.p_worse == pytest.approx(mcnemar_one_sided(worse, better), rel=1e-12)
    assert test.p_better == pytest.approx(mcnemar_one_sided(better, worse), rel=1e-12)
