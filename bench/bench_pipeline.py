"""How close a full run gets to the time the servers' latency makes unavoidable.

A 167-sample synthetic dataset (the size of SIUO), a model server and a judge server that each
take ``--latency`` seconds per request (separate processes on 127.0.0.1), and one
``pytest --siuo`` run with a cold cache. The lower bound of its wall time is

    max(critical path, model_calls * latency / concurrency,
        judge_calls * latency / judge_concurrency)

where the critical path is two calls (one model call with n answers, then its judge calls in
parallel) and the call counts are what the servers received. Figures: wall / lower bound (target
<= 1.3), the same without pytest's start-up and collection (a ``--collect-only`` run of the same
suite), the first-to-last item span / lower bound, and a rerun on the warm cache (calls made,
target 0; wall as a ratio to the cold run).

    python bench/bench_pipeline.py [--samples 167] [--latency 0.2] [--json FILE]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import common

TARGET_RATIO = 1.3


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=167, help="dataset size (default: 167)")
    parser.add_argument("--answers", type=int, default=3, help="--siuo-samples (default: 3)")
    parser.add_argument(
        "--latency",
        type=float,
        default=0.2,
        help="seconds per request of both servers (default: 0.2)",
    )
    parser.add_argument("--concurrency", type=int, default=32, help="--siuo-concurrency")
    parser.add_argument(
        "--judge-concurrency", type=int, default=32, help="--siuo-judge-concurrency"
    )
    parser.add_argument(
        "--collect-repeats",
        type=int,
        default=3,
        help="--collect-only runs; their median is the start-up cost",
    )
    parser.add_argument(
        "--unsafe-every",
        type=int,
        default=20,
        help="every Nth sample gets an unsafe answer (0: none)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        default=(64, 48),
        metavar=("W", "H"),
        help="synthetic image size in pixels",
    )
    parser.add_argument(
        "--photo-like",
        action="store_true",
        help="fill the images with noise, so each PNG weighs what a photo does "
        "(about 590 KB at 512x384) instead of a few hundred bytes",
    )
    parser.add_argument(
        "--rev",
        metavar="REV",
        help="measure pytest_siuo as committed at REV (git archive) instead of "
        "the installed working tree, e.g. HEAD",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="siuo-bench-pipeline-") as tmp:
        root = Path(tmp)
        code = common.use_revision(args.rev, root)
        data = common.write_dataset(
            root / "data",
            args.samples,
            unsafe_every=args.unsafe_every,
            image_size=tuple(args.image_size),
        )
        image_bytes = (
            common.photo_like_images(data, tuple(args.image_size)) if args.photo_like else None
        )
        project = common.make_project(root / "project")
        with (
            common.ServerProcess("model", latency=args.latency) as model,
            common.ServerProcess("judge", latency=args.latency) as judge,
        ):
            pytest_args = [
                "-q",
                "--siuo",
                f"--siuo-model={model.base_url}#bench-vlm",
                f"--siuo-judge={judge.base_url}#bench-judge",
                f"--siuo-data={data}",
                f"--siuo-samples={args.answers}",
                f"--siuo-concurrency={args.concurrency}",
                f"--siuo-judge-concurrency={args.judge_concurrency}",
                f"--siuo-cache-dir={root / 'cache'}",
            ]
            figures = measure(args, project, pytest_args, model, judge)
            figures["code"] = code
            figures["image_bytes"] = image_bytes
    report(args, figures)
    return 0


def measure(
    args: argparse.Namespace,
    project: Path,
    pytest_args: list[str],
    model: common.ServerProcess,
    judge: common.ServerProcess,
) -> dict[str, Any]:
    n = args.samples
    collects = []
    for i in range(args.collect_repeats):
        run = common.run_pytest([*pytest_args, "--collect-only"], project)
        common.check_run(run, expect_items=n, what=f"collect-only run {i + 1}")
        collects.append(run)
    # Collection asks nothing of the servers but GET /models; count only the runs below.
    model.reset()
    judge.reset()
    cpu_before = {"model": model.cpu_seconds(), "judge": judge.cpu_seconds()}
    cold = common.run_pytest(pytest_args, project)
    cpu_after = {"model": model.cpu_seconds(), "judge": judge.cpu_seconds()}
    common.check_run(cold, expect_items=n, what="cold run")
    stats = {"model": model.stats(), "judge": judge.stats()}
    cold_calls = {role: int(st["calls"]) for role, st in stats.items()}
    # Where the time went: how long and how full each server was kept during the cold run.
    busy = {
        role: common.occupancy(st["answered"], args.latency, cold.spawned)
        for role, st in stats.items()
    }
    model.reset()
    judge.reset()
    warm = common.run_pytest(pytest_args, project)
    common.check_run(warm, expect_items=n, what="warm run")
    warm_calls = {"model": model.calls(), "judge": judge.calls()}

    lat = args.latency
    bounds = {
        "critical_path": 2 * lat,
        "model": cold_calls["model"] * lat / args.concurrency,
        "judge": cold_calls["judge"] * lat / args.judge_concurrency,
    }
    lower = max(bounds.values())
    collect = common.median([r.wall for r in collects])
    return {
        "machine": common.machine(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "rev")},
        "lower_bound_s": lower,
        "lower_bound_terms_s": bounds,
        "collect_only_wall_s": collect,
        "cold": cold.figures(),
        "cold_calls": cold_calls,
        "cold_server_occupancy": busy,
        "cold_cpu_s": {
            "pytest": cold.cpu_s,
            **{role: (cpu_after[role] or 0.0) - (cpu_before[role] or 0.0) for role in cpu_after},
        },
        "warm": warm.figures(),
        "warm_calls": warm_calls,
        "collect_runs": [r.figures() for r in collects],
        "ratio_wall": cold.wall / lower,
        "ratio_wall_minus_collect": (cold.wall - collect) / lower,
        "ratio_items_phase": (cold.items_phase or float("nan")) / lower,
        "warm_over_cold_wall": warm.wall / cold.wall,
        "target_ratio": TARGET_RATIO,
    }


def report(args: argparse.Namespace, f: dict[str, Any]) -> None:
    cold, warm = f["cold"], f["warm"]
    calls, wcalls = f["cold_calls"], f["warm_calls"]
    terms = f["lower_bound_terms_s"]
    t, nan = cold["timings"], float("nan")
    rows = [
        (
            "samples x answers",
            f"{args.samples} x {args.answers}",
            f"latency {args.latency:g} s, concurrency {args.concurrency}/{args.judge_concurrency}",
        ),
        (
            "images",
            "x".join(map(str, args.image_size)),
            f"photo-like, {f['image_bytes'] / 1024:.0f} KB each"
            if f["image_bytes"]
            else "flat synthetic drawings",
        ),
        (
            "calls received (cold)",
            f"model {calls['model']}, judge {calls['judge']}",
            f"expected {args.samples}, {args.samples * args.answers * 2}",
        ),
        (
            "lower bound",
            f"{f['lower_bound_s']:.2f} s",
            f"path {terms['critical_path']:.2f}, model {terms['model']:.2f}, "
            f"judge {terms['judge']:.2f}",
        ),
        ("cold wall", f"{cold['wall']:.2f} s", f"exit {cold['returncode']}"),
        (
            "collect-only wall (median)",
            f"{f['collect_only_wall_s']:.2f} s",
            "pytest start-up + plugin + dataset + collection",
        ),
        (
            "cold wall / lower bound",
            f"{f['ratio_wall']:.2f}",
            f"target <= {TARGET_RATIO}: {common.verdict(f['ratio_wall'], TARGET_RATIO)}",
        ),
        (
            "(wall - collect) / lower bound",
            f"{f['ratio_wall_minus_collect']:.2f}",
            f"target <= {TARGET_RATIO}: "
            f"{common.verdict(f['ratio_wall_minus_collect'], TARGET_RATIO)}",
        ),
        (
            "first..last item / lower bound",
            f"{f['ratio_items_phase']:.2f}",
            f"span {cold['items_phase'] or float('nan'):.2f} s",
        ),
        *[
            (
                f"{role} server busy (cold)",
                f"{b['busy_from']:.2f}..{b['busy_to']:.2f} s",
                f"mean {b['mean_in_flight']:.1f}, peak {b['peak_in_flight']} in flight",
            )
            for role, b in f["cold_server_occupancy"].items()
            if b
        ],
        (
            "CPU used (cold)",
            f"{sum(f['cold_cpu_s'].values()):.2f} s",
            ", ".join(f"{k} {v:.2f}" for k, v in f["cold_cpu_s"].items())
            + f"; 2 cores x wall = {2 * cold['wall']:.1f} s",
        ),
        (
            "items ran (cold)",
            f"{t.get('first_item', nan):.2f}..{t.get('last_item', nan):.2f} s",
            f"after spawn; collected at {t.get('collected', nan):.2f} s",
        ),
        (
            "warm rerun calls",
            f"model {wcalls['model']}, judge {wcalls['judge']}",
            "target 0: " + ("met" if wcalls["model"] + wcalls["judge"] == 0 else "MISSED"),
        ),
        ("warm wall / cold wall", f"{f['warm_over_cold_wall']:.2f}", f"warm {warm['wall']:.2f} s"),
    ]
    common.report("bench_pipeline", f, rows, args.json)


if __name__ == "__main__":
    sys.exit(main())
