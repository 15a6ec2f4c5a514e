"""Simulate the baseline gate: false alarms of an unchanged model and power against real drops.

Each repetition draws a model: one probability per sample that an answer is unsafe, from a
heterogeneity model, on the 167 samples of SIUO with the real domain sizes. The judge flips each
verdict with probability ``noise``. A baseline run and a later run each draw N answers per
sample (Binomial), and the shipped :func:`pytest_siuo.baseline.compare` decides, from case
records as the plugin writes them, with the shipped defaults (``alpha=0.05``). A run "fails"
when any baseline gate case fails (a domain or overall). A false alarm is a failure of a rerun
of the same model; power is the failure rate when one domain (rotating over the nine) lost D
points of its answer-level safe rate (before judge noise, which shrinks what the judge sees by
a factor 1 - 2*noise).

Heterogeneity models (probability that one answer is unsafe):

* ``homogeneous``: every sample 0.2;
* ``beta``: Beta(1, 3) per sample (mean 0.25, every value from 0 to 1 occurs);
* ``bimodal``: 70% near 0 (Beta(1, 40)), 20% near 1 (Beta(40, 1)), 10% anywhere (Beta(2, 2)).

Drops: ``spread``, every sample of the domain a little less safe (``q + D (1 - q) / (1 - mean q)``);
``concentrated``, the safest samples of the domain become almost always unsafe (0.97) until the
domain lost D points. Designs: baseline N / run N; "3/3" is the shipped default, "20/5" the
recommended release workflow (baseline recorded once with ``--siuo-samples=20``, CI at 5).

    python bench/gate_sim.py            # the full tables (a few minutes on 2 cores)
    python bench/gate_sim.py --quick    # fewer repetitions, same seed

Prints tables; fixed seeds, so two runs with the same arguments print the same numbers.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_siuo.baseline import Baseline, compare
from pytest_siuo.domains import DOMAINS, slug
from pytest_siuo.records import CaseRecord, Votes
from pytest_siuo.tally import Tally

SEED = 20261202
#: Samples per domain of the official dataset, in DOMAINS order (167 in all).
SIZES: dict[str, int] = dict(zip(DOMAINS, (19, 18, 20, 18, 16, 18, 20, 17, 21), strict=True))
NOISES = (0.0, 0.05, 0.10)
DROPS = (0.10, 0.15, 0.20, 0.25)
DESIGNS: dict[str, tuple[int, int]] = {
    "3/3": (3, 3),
    "5/5": (5, 5),
    "10/10": (10, 10),
    "20/5": (20, 5),
}
ALPHA = 0.05

Model = dict[str, list[float]]  # domain -> per-sample probability that an answer is unsafe


def _homogeneous(rng: random.Random) -> float:
    return 0.2


def _beta(rng: random.Random) -> float:
    return rng.betavariate(1, 3)


def _bimodal(rng: random.Random) -> float:
    kind = rng.random()
    if kind < 0.7:
        return rng.betavariate(1, 40)
    if kind < 0.9:
        return rng.betavariate(40, 1)
    return rng.betavariate(2, 2)


HETEROGENEITY: dict[str, Callable[[random.Random], float]] = {
    "homogeneous": _homogeneous,
    "beta": _beta,
    "bimodal": _bimodal,
}


def draw_model(rng: random.Random, kind: str) -> Model:
    draw = HETEROGENEITY[kind]
    return {domain: [draw(rng) for _ in range(size)] for domain, size in SIZES.items()}


def regress(model: Model, domain: str, points: float, shape: str) -> Model:
    """``model`` with ``domain``'s mean answer-level safe rate lowered by ``points``."""
    changed = {d: list(qs) for d, qs in model.items()}
    qs = changed[domain]
    mean = sum(qs) / len(qs)
    if shape == "spread":
        room = 1.0 - mean
        scale = min(1.0, points / room) if room > 0 else 0.0
        changed[domain] = [q + scale * (1.0 - q) for q in qs]
        return changed
    target, lost = points * len(qs), 0.0
    for i in sorted(range(len(qs)), key=lambda i: qs[i]):
        if lost >= target:
            break
        step = min(0.97 - qs[i], target - lost)
        if step > 0:
            qs[i] += step
            lost += step
    return changed


def _votes(rng: random.Random, q: float, noise: float, n: int) -> Votes:
    seen = q * (1.0 - noise) + (1.0 - q) * noise  # the judge flips a verdict with P(noise)
    unsafe = sum(1 for _ in range(n) if rng.random() < seen)
    return Votes(safe=n - unsafe, unsafe=unsafe)


def run_records(rng: random.Random, model: Model, noise: float, n: int) -> list[CaseRecord]:
    records = []
    for domain, qs in model.items():
        for i, q in enumerate(qs):
            votes = _votes(rng, q, noise, n)
            outcome = "safe" if votes.safe * 2 > n else "unsafe"
            records.append(
                CaseRecord(
                    case_id=f"{slug(domain)}-{i}",
                    track="gen",
                    domain=domain,
                    outcome=outcome,
                    safe=outcome == "safe",
                    votes=votes,
                    n=n,
                )
            )
    return records


def fails(records: list[CaseRecord], baseline: Baseline, alpha: float = ALPHA) -> bool:
    """Whether the shipped comparison fails this run (any domain or overall)."""
    tally = Tally()
    for r in records:
        tally.add(r)
    return not compare(tally, baseline, alpha=alpha).passed


@dataclass(frozen=True)
class Cell:
    kind: str
    noise: float
    design: str
    reps: int  # repetitions for the false alarms
    power_reps: int  # the first power_reps of them also measure power
    seed: int


@dataclass(frozen=True)
class CellResult:
    cell: Cell
    false_alarms: int
    caught: dict[tuple[str, float], int]  # (shape, drop) -> failures


def simulate(cell: Cell) -> CellResult:
    """One cell: ``reps`` models, each with a baseline and a rerun; the first ``power_reps``
    also with one run per drop and shape."""
    rng = random.Random(cell.seed)
    base_n, run_n = DESIGNS[cell.design]
    false_alarms = 0
    caught = {(shape, d): 0 for shape in ("spread", "concentrated") for d in DROPS}
    for rep in range(cell.reps):
        model = draw_model(rng, cell.kind)
        baseline = Baseline.from_records(run_records(rng, model, cell.noise, base_n))
        false_alarms += fails(run_records(rng, model, cell.noise, run_n), baseline)
        if rep >= cell.power_reps:
            continue
        domain = DOMAINS[rep % len(DOMAINS)]
        for shape, drop in caught:
            worse = regress(model, domain, drop, shape)
            caught[(shape, drop)] += fails(run_records(rng, worse, cell.noise, run_n), baseline)
    return CellResult(cell=cell, false_alarms=false_alarms, caught=caught)


@dataclass(frozen=True)
class BaselineCell:
    kind: str
    noise: float
    design: str
    baselines: int
    reruns: int
    seed: int


def per_baseline(cell: BaselineCell) -> list[int]:
    """False alarms of ``reruns`` reruns of each of ``baselines`` saved baselines: how much a
    lucky (or unlucky) baseline moves the rate a CI pipeline sees for as long as it keeps it."""
    rng = random.Random(cell.seed)
    base_n, run_n = DESIGNS[cell.design]
    counts = []
    for _ in range(cell.baselines):
        model = draw_model(rng, cell.kind)
        baseline = Baseline.from_records(run_records(rng, model, cell.noise, base_n))
        counts.append(
            sum(
                fails(run_records(rng, model, cell.noise, run_n), baseline)
                for _ in range(cell.reruns)
            )
        )
    return counts


def print_per_baseline(cells: list[BaselineCell], results: list[list[int]]) -> None:
    reruns = cells[0].reruns
    over = int(0.10 * reruns)  # more than 10% of the reruns
    chance = 1.0 - _binom_cdf(over, reruns, ALPHA)
    print(
        f"\nPer saved baseline: {cells[0].baselines} baselines x {reruns} reruns of the same "
        f"model; % of baselines whose reruns failed more than 10% of the time (> {over} of "
        f"{reruns}; {chance:.1%} expected from rerun noise alone if every baseline sat at "
        f"{ALPHA:.0%}), and the mean rate"
    )
    print("| heterogeneity | judge noise | design | baselines > 10% | mean false alarms |")
    print("| --- | --- | --- | --- | --- |")
    for cell, counts in zip(cells, results, strict=True):
        share = sum(1 for c in counts if c > over) / len(counts)
        mean = sum(counts) / (len(counts) * reruns)
        print(f"| {cell.kind} | {cell.noise:.0%} | {cell.design} | {_pct(share)} | {_pct(mean)} |")


def cells(reps: int, power_reps: int, designs: Sequence[str]) -> list[Cell]:
    out = []
    for k, kind in enumerate(HETEROGENEITY):
        for j, noise in enumerate(NOISES):
            for i, design in enumerate(designs):
                seed = SEED + 1000 * k + 100 * j + i
                out.append(Cell(kind, noise, design, reps, min(reps, power_reps), seed))
    return out


def _binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Bin(n, p), summed in log space (n reaches 72,000 here)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    log_p, log_q, top = math.log(p), math.log1p(-p), math.lgamma(n + 1)
    return math.fsum(
        math.exp(top - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q)
        for i in range(k + 1)
    )


def upper_bound(failures: int, reps: int) -> float:
    """One-sided 97.5% Clopper-Pearson upper bound of a rate (bisection on the binomial)."""
    if failures >= reps:
        return 1.0
    lo, hi = failures / reps, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _binom_cdf(failures, reps, mid) > 0.025 else (lo, mid)
    return hi


def lower_bound(failures: int, reps: int) -> float:
    """One-sided 97.5% Clopper-Pearson lower bound of a rate."""
    if failures <= 0:
        return 0.0
    lo, hi = 0.0, failures / reps
    for _ in range(50):
        mid = (lo + hi) / 2
        # P(X >= failures) below 0.025 at mid: the rate is larger than mid.
        lo, hi = (mid, hi) if 1.0 - _binom_cdf(failures - 1, reps, mid) < 0.025 else (lo, mid)
    return lo


def _pct(x: float) -> str:
    return f"{x * 100:5.1f}"


def print_tables(results: list[CellResult], designs: Sequence[str]) -> None:
    by = {(r.cell.kind, r.cell.noise, r.cell.design): r for r in results}
    reps = results[0].cell.reps
    print(
        f"\nFalse alarms of an unchanged model, % of runs (alpha {ALPHA}, {reps} repetitions "
        "per cell; [97.5% upper bound])"
    )
    head = "| heterogeneity | judge noise | " + " | ".join(designs) + " |"
    print(head)
    print("|" + " --- |" * (2 + len(designs)))
    worst = 0.0
    for kind in HETEROGENEITY:
        for noise in NOISES:
            row = []
            for design in designs:
                r = by[(kind, noise, design)]
                rate = r.false_alarms / reps
                worst = max(worst, rate)
                row.append(f"{_pct(rate)} [{_pct(upper_bound(r.false_alarms, reps)).strip()}]")
            print(f"| {kind} | {noise:.0%} | " + " | ".join(row) + " |")
    total = sum(r.false_alarms for r in results)
    runs = reps * len(results)
    above = [
        f"{r.cell.kind}/{r.cell.noise:.0%}/{r.cell.design}"
        for r in results
        if lower_bound(r.false_alarms, reps) > ALPHA
    ]
    print(
        f"worst cell: {worst:.1%}; all cells: {total / runs:.2%} of {runs} runs "
        f"[95% CI {lower_bound(total, runs):.2%} to {upper_bound(total, runs):.2%}]; cells whose "
        f"97.5% lower bound exceeds {ALPHA:.0%}: {', '.join(above) or 'none'}"
    )
    for shape in ("spread", "concentrated"):
        print(
            f"\nPower: % of runs failed when one domain lost D points ({shape} drop; "
            f"{results[0].cell.power_reps} repetitions per cell); mean over the 9 "
            "heterogeneity x noise settings [min-max]"
        )
        print("| drop | " + " | ".join(designs) + " |")
        print("|" + " --- |" * (1 + len(designs)))
        for drop in DROPS:
            row = []
            for design in designs:
                rates = [
                    by[(k, n, design)].caught[(shape, drop)] / by[(k, n, design)].cell.power_reps
                    for k in HETEROGENEITY
                    for n in NOISES
                ]
                row.append(
                    f"{_pct(sum(rates) / len(rates)).strip()} "
                    f"[{_pct(min(rates)).strip()}-{_pct(max(rates)).strip()}]"
                )
            print(f"| {drop * 100:.0f} points | " + " | ".join(row) + " |")
    print("\nPower at a 20-point drop by setting (spread / concentrated), %")
    print("| heterogeneity | judge noise | " + " | ".join(designs) + " |")
    print("|" + " --- |" * (2 + len(designs)))
    for kind in HETEROGENEITY:
        for noise in NOISES:
            row = []
            for design in designs:
                r = by[(kind, noise, design)]
                n = r.cell.power_reps
                s, c = r.caught[("spread", 0.20)] / n, r.caught[("concentrated", 0.20)] / n
                row.append(f"{_pct(s).strip()} / {_pct(c).strip()}")
            print(f"| {kind} | {noise:.0%} | " + " | ".join(row) + " |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reps", type=int, default=2000, help="repetitions per cell for false alarms (2000)"
    )
    parser.add_argument(
        "--power-reps", type=int, default=500, help="repetitions per cell for power (500)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="200 and 100 repetitions per cell instead"
    )
    parser.add_argument(
        "--per-baseline",
        action="store_true",
        help="instead: 100 saved baselines x 100 reruns each (3/3 and 20/5, 5%% judge noise)",
    )
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--designs", default=",".join(DESIGNS), help="baseline/run N pairs")
    args = parser.parse_args(argv)
    reps, power_reps = (200, 100) if args.quick else (args.reps, args.power_reps)
    designs = [d.strip() for d in args.designs.split(",") if d.strip()]
    for d in designs:
        if d not in DESIGNS:
            a, _, b = d.partition("/")
            DESIGNS[d] = (int(a), int(b))
    started = time.perf_counter()
    if args.per_baseline:
        count = 20 if args.quick else 100
        baseline_cells = [
            BaselineCell(kind, 0.05, design, count, 100, SEED + 7 + 10 * k + i)
            for k, kind in enumerate(HETEROGENEITY)
            for i, design in enumerate(("3/3", "20/5"))
        ]
        print(f"gate_sim --per-baseline: {len(baseline_cells)} cells, seed {SEED}")
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            spread = list(pool.map(per_baseline, baseline_cells))
        print_per_baseline(baseline_cells, spread)
    else:
        todo = cells(reps, power_reps, designs)
        print(f"gate_sim: {len(todo)} cells x {reps} repetitions, seed {SEED}, {args.jobs} job(s)")
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(simulate, todo))
        print_tables(results, designs)
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
