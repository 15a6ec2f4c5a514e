"""Must show: bench/tail_floor.py's ideal scheduler computes the wall time a schedule really has
(worked by hand on small workloads), so the floor it prints for heavy-tailed latency is one."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import tail_floor


def test_one_slot_each_runs_the_calls_back_to_back() -> None:
    # Model: 1 s then 2 s. Judge calls of sample 0 ready at 1 s (3 s, 1 s), of sample 1 at 3 s.
    wall = tail_floor.simulate([1.0, 2.0], [[3.0, 1.0], [1.0]], 1, 1)
    # Judge: 1..4 (3 s), 4..5 (1 s), then sample 1's call 5..6.
    assert wall == pytest.approx(6.0)


def test_the_judge_pool_waits_for_calls_that_are_not_ready() -> None:
    # One slow model call: the judge slot idles until 10 s.
    assert tail_floor.simulate([10.0], [[1.0, 1.0]], 1, 2) == pytest.approx(11.0)


def test_longest_first_puts_the_long_call_in_its_own_slot() -> None:
    # Two judge slots, calls 4, 1, 1, 1, 1 ready at once (after a 0 s model call).
    calls = [[1.0, 1.0, 1.0, 1.0, 4.0]]
    fifo = tail_floor.simulate([0.0], calls, 1, 2)
    lpt = tail_floor.simulate([0.0], calls, 1, 2, longest_first=True)
    assert (fifo, lpt) == (pytest.approx(6.0), pytest.approx(4.0))


def test_the_bound_is_the_longest_of_the_path_and_the_two_pools() -> None:
    model, judge = [1.0, 1.0], [[8.0], [2.0]]
    # Pools: model 2/2 = 1, judge 10/2 = 5; path: max(1 + 2, 8 + 1) = 9.
    assert tail_floor.lower_bound(model, judge, 2, 2) == pytest.approx(9.0)
    assert tail_floor.simulate(model, judge, 2, 2) >= tail_floor.lower_bound(model, judge, 2, 2)


def test_no_schedule_beats_the_bound_on_drawn_workloads() -> None:
    rng = random.Random(5)
    for _ in range(20):
        m, j = tail_floor.workload(rng, 40, 4, 2.0)
        bound = tail_floor.lower_bound(m, j, 8, 8)
        for longest_first in (False, True):
            assert tail_floor.simulate(m, j, 8, 8, longest_first=longest_first) >= bound - 1e-9


def test_fixed_latency_ideal_is_one_model_round_then_full_judge_rounds() -> None:
    # bench_pipeline.py's --compare-xdist floor at 0.2 s: 167 model calls, 668 judge calls, 32
    # slots each. The first judge calls are ready after one model round (0.2 s) and the model
    # pool keeps the judge pool fed, so the judge pool runs ceil(668 / 32) = 21 full rounds:
    # 0.2 + 21 x 0.2 = 4.4 s, above the pool bound 668 x 0.2 / 32 = 4.175 s.
    model, judge = [0.2] * 167, [[0.2] * 4 for _ in range(167)]
    assert tail_floor.simulate(model, judge, 32, 32) == pytest.approx(4.4)
    assert tail_floor.lower_bound(model, judge, 32, 32) == pytest.approx(4.175)
