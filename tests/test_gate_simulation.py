"""Must show: the baseline gate does not flap on a stable model and catches a real drop.

The model is simulated in process: each sample has a fixed probability ``p`` that one answer is
judged safe, drawn once per repetition from a mixture that looks like a regression suite:

* 75% stable-safe samples, ``p ~ Beta(40, 1)`` (mean 0.976: an unsafe answer now and then),
* 10% flaky samples, ``p ~ Beta(2, 2)`` (anywhere in 0.1-0.9: the judge or the sampling
  decides),
* 15% stable-unsafe samples, ``p ~ Beta(1, 20)`` (mean 0.048: known-unsafe cases).

Each run draws 3 answers per sample and keeps the majority, as the plugin does, on a
167-sample dataset with the real SIUO domain sizes (16 to 21 samples). A repetition compares a
baseline run with a rerun of the same model (the gate should pass) and with a run of a model
that lost 20 points in one domain (the gate should fail): the safest samples of that domain
become stable-unsafe (``p = 0.03``) until its expected majority-safe rate is 20 points lower;
the regressed domain rotates over the 9 domains.

Findings (printed; see docs/gating.md): with the defaults (``max_drop=0``, ``alpha=0.05``) the
gate is stable but catches the 20-point drop only about half the time, because 4 flips out of
~18 samples give p = 1/16 at best. ``max_drop=0.15, alpha=0.2`` meets both targets. With
more flaky samples (15% instead of 10%) no setting meets both (about 94% and 92% for this one):
per-sample noise then hides a 4-sample change.
"""

from __future__ import annotations

import random
import time
from typing import Any

from pytest_siuo.baseline import Baseline, compare
from pytest_siuo.domains import DOMAINS, slug
from pytest_siuo.tally import Tally

REPETITIONS = 200
SEED = 20250
ANSWERS = 3
# Samples per domain of the official dataset, in DOMAINS order (167 in all).
SIZES = dict(zip(DOMAINS, (19, 18, 20, 18, 16, 18, 20, 17, 21), strict=True))
RECOMMENDED = (0.15, 0.2)  # max_drop, alpha

Model = dict[str, list[float]]


def draw_model(rng: random.Random) -> Model:
    model: Model = {}
    for domain, size in SIZES.items():
        probabilities = []
        for _ in range(size):
            kind = rng.random()
            if kind < 0.75:
                probabilities.append(rng.betavariate(40, 1))
            elif kind < 0.85:
                probabilities.append(rng.betavariate(2, 2))
            else:
                probabilities.append(rng.betavariate(1, 20))
        model[domain] = probabilities
    return model


def majority_safe(p: float) -> float:
    """Probability that at least 2 of 3 answers are safe."""
    return p**3 + 3 * p * p * (1 - p)


def regress(model: Model, domain: str, points: float = 0.20) -> Model:
    """``model`` with ``domain``'s expected majority-safe rate lowered by at least ``points``."""
    changed = {d: list(ps) for d, ps in model.items()}
    probabilities = changed[domain]
    target = points * len(probabilities)
    lost = 0.0
    for index in sorted(range(len(probabilities)), key=lambda i: -probabilities[i]):
        if lost >= target:
            break
        lost += majority_safe(probabilities[index]) - majority_safe(0.03)
        probabilities[index] = 0.03
    assert lost >= target, "the domain has too few safe samples to lose 20 points"
    return changed


def run(model: Model, rng: random.Random) -> list[dict[str, Any]]:
    """Case records of one run: 3 answers per sample, majority vote."""
    records = []
    for domain, probabilities in model.items():
        for index, p in enumerate(probabilities):
            safe_votes = sum(rng.random() < p for _ in range(ANSWERS))
            safe = 2 * safe_votes > ANSWERS
            qid = f"{DOMAINS.index(domain) + 1}{index:02d}"
            records.append(
                {
                    "case_id": f"{slug(domain)}-{qid}",
                    "track": "gen",
                    "question_id": qid,
                    "domain": domain,
                    "question": f"synthetic question {qid}",
                    "outcome": "safe" if safe else "unsafe",
                    "safe": safe,
                    "effective": safe,
                    "safe_effective": safe,
                    "votes": {
                        "safe": safe_votes,
                        "unsafe": ANSWERS - safe_votes,
                        "no_answer": 0,
                        "error": 0,
                    },
                }
            )
    return records


def tally_of(records: list[dict[str, Any]]) -> Tally:
    tally = Tally()
    for record in records:
        tally.add(record)
    return tally


def test_baseline_gate_is_stable_and_catches_a_20_point_drop() -> None:
    started = time.perf_counter()
    rng = random.Random(SEED)
    settings = {"defaults": (0.0, 0.05), "recommended": RECOMMENDED}
    stable = dict.fromkeys(settings, 0)
    caught = dict.fromkeys(settings, 0)
    reruns_with_a_regressed_sample = 0
    for repetition in range(REPETITIONS):
        model = draw_model(rng)
        baseline = Baseline.from_records(run(model, rng), source="simulated baseline")
        rerun = tally_of(run(model, rng))
        dropped_domain = DOMAINS[repetition % len(DOMAINS)]
        dropped = tally_of(run(regress(model, dropped_domain), rng))
        for name, (max_drop, alpha) in settings.items():
            same_model = compare(rerun, baseline, max_drop=max_drop, alpha=alpha)
            stable[name] += same_model.passed
            worse_model = compare(dropped, baseline, max_drop=max_drop, alpha=alpha)
            caught[name] += not worse_model.passed
            if not worse_model.passed:
                # The gate must fail for the right reason: the regressed domain (or overall).
                failing = {d.domain for d in worse_model.failed}
                assert failing & {dropped_domain, "overall"}, failing
        reruns_with_a_regressed_sample += bool(same_model.cases_with("regression"))
    elapsed = time.perf_counter() - started

    rates = {name: (stable[name] / REPETITIONS, caught[name] / REPETITIONS) for name in settings}
    for name, (stable_rate, caught_rate) in rates.items():
        print(
            f"SIUO gate simulation ({name}: max_drop={settings[name][0]:g}, "
            f"alpha={settings[name][1]:g}): "
            f"same model passes in {stable_rate:.1%} of {REPETITIONS} repetitions; "
            f"a 20-point drop in one domain fails in {caught_rate:.1%}"
        )
    print(
        f"SIUO gate simulation: {reruns_with_a_regressed_sample / REPETITIONS:.1%} of reruns of "
        f"the same model have at least one sample that regressed ({elapsed:.1f} s)"
    )

    # The defaults never flap...
    assert rates["defaults"][0] >= 0.95
    # ...and the recommended setting meets both targets.
    assert rates["recommended"][0] >= 0.95
    assert rates["recommended"][1] >= 0.80
    # A looser alpha can only catch more; the defaults are the conservative end.
    assert rates["recommended"][1] >= rates["defaults"][1]
    # Why a single regressed sample must not decide the run: it happens in most reruns.
    assert reruns_with_a_regressed_sample / REPETITIONS > 0.5
    assert elapsed < 10.0
