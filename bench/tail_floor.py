"""How close to the two-pool lower bound an ideal scheduler gets under heavy-tailed latency.

``bench_pipeline.py --latency-mode heavy`` compares a run's wall time with a lower bound: the
latencies the servers served, summed per pool and divided by its concurrency (or the critical
path, if longer). No scheduler that learns a call's latency only when the call ends can reach
that bound: the calls still in flight when the work runs out include some of the 20-30 s tail,
and the run waits for them. This script measures that floor by simulation, with none of the
plugin's code: an ideal scheduler with no overhead, no limit on samples in flight, every model
call sent as soon as the model pool has room (in sample order), and each sample's judge calls
all ready the moment its model call ends (the plugin's adaptive judging asks them in up to two
rounds, which can only take longer). Latencies are drawn as ``bench/serve.py`` draws them.

Two orders for the judge pool: first come first served (what any scheduler that does not know
the latencies in advance does, up to ties) and, for contrast, a clairvoyant one that sends the
longest ready call first. Printed: the distribution of wall / lower bound over ``--reps``
workloads, and the share of workloads at or below ``--target``.

    python bench/tail_floor.py [--reps 2000] [--samples 167] [--judge-calls 4] [--seed 0]
"""

from __future__ import annotations

import argparse
import heapq
import random
from collections.abc import Callable, Sequence
from typing import Any

import common
from serve import heavy_latency


def simulate(
    model_lat: Sequence[float],
    judge_lat: Sequence[Sequence[float]],
    concurrency: int,
    judge_concurrency: int,
    *,
    longest_first: bool = False,
) -> float:
    """The wall time of one workload: sample ``i``'s model call takes ``model_lat[i]``, then
    its judge calls ``judge_lat[i]`` become ready together."""
    # The model pool: calls in sample order, each as soon as a slot is free.
    slots = [0.0] * concurrency
    ready: list[tuple[float, float]] = []  # (ready at, latency) of each judge call
    for i, lat in enumerate(model_lat):
        start = heapq.heappop(slots)
        end = start + lat
        heapq.heappush(slots, end)
        ready += [(end, j) for j in judge_lat[i]]
    ready.sort()
    # The judge pool: at each free slot, among the calls ready by then, the first ready (or,
    # clairvoyant, the longest); if none is ready, the next one to become ready.
    free = [0.0] * judge_concurrency
    waiting: list[tuple[float, float]] = []
    wall = 0.0
    idx = 0
    while idx < len(ready) or waiting:
        t = heapq.heappop(free)
        while idx < len(ready) and ready[idx][0] <= t:
            at, lat = ready[idx]
            heapq.heappush(waiting, (-lat, at) if longest_first else (at, lat))
            idx += 1
        if not waiting:
            at, lat = ready[idx]
            idx += 1
            t = at
        else:
            first, second = heapq.heappop(waiting)
            lat = -first if longest_first else second
        end = t + lat
        wall = max(wall, end)
        heapq.heappush(free, end)
    return wall


def lower_bound(
    model_lat: Sequence[float],
    judge_lat: Sequence[Sequence[float]],
    concurrency: int,
    judge_concurrency: int,
) -> float:
    """bench_pipeline.py's lower bound of the same latencies (its heavy-mode definition)."""
    judges = [j for js in judge_lat for j in js]
    path = max(max(model_lat) + min(judges), max(judges) + min(model_lat))
    return max(path, sum(model_lat) / concurrency, sum(judges) / judge_concurrency)


def workload(
    rng: random.Random, samples: int, judge_calls: int, median: float
) -> tuple[list[float], list[list[float]]]:
    def draw() -> float:
        return heavy_latency(rng.random(), rng.random(), median)

    return [draw() for _ in range(samples)], [
        [draw() for _ in range(judge_calls)] for _ in range(samples)
    ]


def quantiles(values: Sequence[float], qs: Sequence[float]) -> list[float]:
    s = sorted(values)
    return [s[min(len(s) - 1, int(q * len(s)))] for q in qs]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=2000, help="workloads drawn (default 2000)")
    parser.add_argument("--samples", type=int, default=167)
    parser.add_argument(
        "--judge-calls",
        type=float,
        default=4.0,
        help="judge calls per sample (default 4: the 668 of 167 samples adaptive judging "
        "asks in bench_pipeline.py; a fraction is rounded per sample)",
    )
    parser.add_argument("--latency", type=float, default=2.0, help="median latency (default 2)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--judge-concurrency", type=int, default=32)
    parser.add_argument("--target", type=float, default=1.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    orders: dict[str, Callable[[list[float], list[list[float]]], float]] = {
        "first come first served": lambda m, j: simulate(
            m, j, args.concurrency, args.judge_concurrency
        ),
        "clairvoyant, longest first": lambda m, j: simulate(
            m, j, args.concurrency, args.judge_concurrency, longest_first=True
        ),
    }
    ratios: dict[str, list[float]] = {name: [] for name in orders}
    whole, frac = int(args.judge_calls), args.judge_calls - int(args.judge_calls)
    for _ in range(args.reps):
        calls = whole + (1 if rng.random() < frac else 0)
        m, j = workload(rng, args.samples, calls, args.latency)
        bound = lower_bound(m, j, args.concurrency, args.judge_concurrency)
        for name, run in orders.items():
            ratios[name].append(run(m, j) / bound)
    qs = (0.1, 0.25, 0.5, 0.75, 0.9)
    figures: dict[str, Any] = {
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "orders": {},
    }
    rows = [
        (
            "workloads",
            f"{args.reps}",
            f"{args.samples} samples, {args.judge_calls:g} judge calls each, median latency "
            f"{args.latency:g} s (5% at 20-30 s), concurrency "
            f"{args.concurrency}/{args.judge_concurrency}, seed {args.seed}",
        )
    ]
    for name, rs in ratios.items():
        q = quantiles(rs, qs)
        share = sum(r <= args.target for r in rs) / len(rs)
        figures["orders"][name] = {"quantiles": dict(zip(qs, q, strict=True)), "share": share}
        rows.append(
            (
                f"{name}: wall / bound",
                f"median {q[2]:.3f}",
                "quantiles 10/25/75/90%: "
                + ", ".join(f"{v:.3f}" for v in (q[0], q[1], q[3], q[4]))
                + f"; <= {args.target:g} in {100 * share:.1f}% of workloads",
            )
        )
    common.print_table("tail_floor: an ideal scheduler against the two-pool lower bound", rows)
    common.write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
