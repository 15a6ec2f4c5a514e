"""Must show: the baseline gate's false alarms stay under --siuo-alpha on sampled models, and
it still catches a large drop. A small fixed-seed run of bench/gate_sim.py (the full tables:
``python bench/gate_sim.py``; docs/gating.md quotes them).

The seed fixes the outcome, and the tolerances are wide enough that any seed would pass them
but for a broken gate: with a true false-alarm rate of at most 5%, 300 runs show more than 33
false alarms with probability below 1e-5 (Binomial(300, 0.05) tail), and the 25-point drop
under the recommended workflow is caught about 95% of the time, far above the 60% asked here.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import gate_sim

REPS = 300
LIMIT = 33


def test_the_tolerance_cannot_flake() -> None:
    tail = sum(
        math.comb(REPS, k) * 0.05**k * 0.95 ** (REPS - k) for k in range(LIMIT + 1, REPS + 1)
    )
    assert tail < 1e-5


def test_false_alarms_stay_under_alpha_at_the_default_n() -> None:
    # Heterogeneous samples, 5% judge noise, the shipped default of 3 answers in both runs.
    cell = gate_sim.Cell("beta", 0.05, "3/3", reps=REPS, power_reps=0, seed=12)
    result = gate_sim.simulate(cell)
    assert result.false_alarms <= LIMIT, result


def test_false_alarms_stay_under_alpha_with_a_20_answer_baseline() -> None:
    cell = gate_sim.Cell("bimodal", 0.10, "20/5", reps=REPS, power_reps=40, seed=13)
    result = gate_sim.simulate(cell)
    assert result.false_alarms <= LIMIT, result
    # The same gate is not blind: a 25-point drop in one domain is caught.
    assert result.caught[("spread", 0.25)] >= 0.6 * 40, result
    assert result.caught[("concentrated", 0.25)] >= 0.6 * 40, result


def test_a_drop_lowers_the_domain_by_the_asked_points() -> None:
    import random

    model = gate_sim.draw_model(random.Random(1), "beta")
    domain = gate_sim.DOMAINS[0]
    for shape in ("spread", "concentrated"):
        worse = gate_sim.regress(model, domain, 0.2, shape)
        before, after = model[domain], worse[domain]
        assert sum(after) / len(after) - sum(before) / len(before) == pytest_approx(0.2)
        assert all(0.0 <= q <= 1.0 for q in after)
        assert {d: q for d, q in worse.items() if d != domain} == {
            d: q for d, q in model.items() if d != domain
        }


def pytest_approx(value: float) -> object:
    import pytest

    return pytest.approx(value, abs=1e-9)
