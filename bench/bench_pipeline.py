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
target 0; wall as a ratio to the cold run). From the servers' side: calls, mean and peak calls in
flight, and the time from the pytest process's spawn to its first request (the start-up
``GET /models``) and to its first chat request; from the pytest process: CPU seconds per call
(the child's user + system time, its reaped children such as xdist workers included, over the
calls both servers received).

``--latency-mode heavy`` gives a heavy tail (median ``--latency``, 5% of requests at 20-30 s,
seeded by ``--seed``); the lower bound then adds up the latencies the servers actually served.
``--compare-xdist`` runs the same work with ``-n 0`` and ``-n 2``, ``--repeats`` times each,
interleaved, and prints medians and the ratio; then xdist's own cost on this machine (a plain
parametrized test of as many items, ``-n 2`` against ``-n 0``) next to the most ``-n 2`` could
win back on this work: the ``-n 0`` item span above the wall of an ideal scheduler of the same
calls (``tail_floor.simulate``: no overhead, every call sent as soon as a slot is free and its
model answer is in; with fixed latency no schedule of these calls ends sooner), or above the
lower bound with heavy-tailed latency.

    python bench/bench_pipeline.py [--samples 167] [--latency 0.2] [--json FILE]
    python bench/bench_pipeline.py --latency 2 --latency-mode heavy --compare-xdist
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import common
import tail_floor

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
    parser.add_argument(
        "--latency-mode",
        choices=("fixed", "heavy"),
        default="fixed",
        help="fixed: every request takes --latency; heavy: median --latency, 5%% at 20-30 s",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the heavy-tailed latency")
    parser.add_argument(
        "--distinct-answers",
        type=int,
        default=3,
        help="distinct answer texts among a model call's answers (default: 3)",
    )
    parser.add_argument(
        "--compare-xdist",
        action="store_true",
        help="run the same work with -n 0 and -n 2, interleaved, --repeats times each",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each mode with --compare-xdist"
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
    parser.add_argument(
        "--compare-judge-all",
        action="store_true",
        help="run adaptive judging (the default) against --siuo-judge-all on the same work, "
        "interleaved: judge calls of each, calls saved, and whether every figure is equal",
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
        servers = {
            "latency": args.latency,
            "latency_mode": args.latency_mode,
            "seed": args.seed,
            "distinct": args.distinct_answers,
        }
        with (
            common.ServerProcess("model", **servers) as model,
            common.ServerProcess("judge", **servers) as judge,
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
            if args.compare_judge_all:
                figures = measure_judge_all(args, project, root, pytest_args, model, judge)
            elif args.compare_xdist:
                figures = measure_xdist(args, project, root, pytest_args, model, judge)
            else:
                figures = measure(args, project, pytest_args, model, judge)
            figures["code"] = code
            figures["image_bytes"] = image_bytes
    if args.compare_judge_all:
        report_judge_all(args, figures)
    elif args.compare_xdist:
        report_xdist(args, figures)
    else:
        report(args, figures)
    return 0


def served(
    args: argparse.Namespace,
    run: common.Run,
    model: common.ServerProcess,
    judge: common.ServerProcess,
) -> dict[str, Any]:
    """What the servers saw of ``run`` (asked right after it): calls, occupancy, start-up
    times, the lower bound of the wall time and the CPU per call of the pytest process."""
    stats = {"model": model.stats(), "judge": judge.stats()}
    calls = {role: int(st["calls"]) for role, st in stats.items()}
    spans = {role: [tuple(x) for x in st["spans"]] for role, st in stats.items()}
    occupancy = {role: common.span_occupancy(sp, run.spawned) for role, sp in spans.items()}
    firsts = [st["first_request_at"] for st in stats.values() if st["first_request_at"]]
    chats = [o["first_call"] for o in occupancy.values() if o]
    total_calls = sum(calls.values())
    if args.latency_mode == "fixed":
        lat = args.latency
        bounds = {
            "critical_path": 2 * lat,
            "model": calls["model"] * lat / args.concurrency,
            "judge": calls["judge"] * lat / args.judge_concurrency,
        }
    else:
        # The latencies actually served: every model call is followed by a judge call, and
        # each pool can do no better than its latency-seconds over its concurrency.
        took = {role: [e - s for s, e in sp] or [0.0] for role, sp in spans.items()}
        bounds = {
            "critical_path": max(
                max(took["model"]) + min(took["judge"]), max(took["judge"]) + min(took["model"])
            ),
            "model": sum(took["model"]) / args.concurrency,
            "judge": sum(took["judge"]) / args.judge_concurrency,
        }
    ideal = None
    if args.latency_mode == "fixed" and calls["model"]:
        # The same calls under an ideal scheduler: each sample's judge calls (spread evenly
        # over the samples) ready when its model call ends.
        per, extra = divmod(calls["judge"], calls["model"])
        ideal = tail_floor.simulate(
            [lat] * calls["model"],
            [[lat] * (per + (i < extra)) for i in range(calls["model"])],
            args.concurrency,
            args.judge_concurrency,
        )
    return {
        "calls": calls,
        "occupancy": occupancy,
        "ideal_wall_s": ideal,
        "first_request_s": round(min(firsts) - run.spawned, 3) if firsts else None,
        "first_chat_request_s": min(chats) if chats else None,
        "lower_bound_s": max(bounds.values()),
        "lower_bound_terms_s": bounds,
        "cpu_per_call_ms": 1000 * run.cpu_s / total_calls if total_calls else None,
    }


def interleaved(
    args: argparse.Namespace,
    project: Path,
    root: Path,
    pytest_args: list[str],
    model: common.ServerProcess,
    judge: common.ServerProcess,
    modes: dict[str, list[str]],
    *,
    report: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """``--repeats`` cold runs of each mode (its extra pytest arguments), the order of the
    modes alternating between repeats; with ``report``, each run's JSON report path too."""
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    base = [a for a in pytest_args if not a.startswith("--siuo-cache-dir=")]
    for i in range(args.repeats):
        order = list(modes) if i % 2 == 0 else list(reversed(modes))
        for mode in order:
            # A cold cache for every run.
            cmd = [*base, *modes[mode], f"--siuo-cache-dir={root / f'cache-{mode}-{i}'}"]
            out = root / f"report-{mode}-{i}.json"
            if report:
                cmd.append(f"--siuo-report={out}")
            model.reset()
            judge.reset()
            run = common.run_pytest(cmd, project)
            common.check_run(run, expect_items=args.samples, what=f"{mode} run {i + 1}")
            entry: dict[str, Any] = {"run": run.figures(), **served(args, run, model, judge)}
            if report:
                entry["report"] = out
            runs[mode].append(entry)
    return runs


def measure_xdist(
    args: argparse.Namespace,
    project: Path,
    root: Path,
    pytest_args: list[str],
    model: common.ServerProcess,
    judge: common.ServerProcess,
) -> dict[str, Any]:
    """The same cold run with ``-n 0`` and ``-n 2``, interleaved, ``--repeats`` times each."""
    modes = {"n0": ["-n", "0"], "n2": ["-n", "2"]}
    runs = interleaved(args, project, root, pytest_args, model, judge, modes)
    bare = bare_xdist(args, root)
    med = {
        mode: {
            "wall_s": common.median([r["run"]["wall"] for r in rs]),
            "cpu_per_call_ms": common.median([r["cpu_per_call_ms"] or 0.0 for r in rs]),
            "lower_bound_s": common.median([r["lower_bound_s"] for r in rs]),
            "calls": common.median([sum(r["calls"].values()) for r in rs]),
            # Where the wall goes, seconds after spawn (medians): collected (under -n, when
            # the first worker had its list), first and last item, then the end.
            **{
                f"{phase}_s": common.median(
                    [r["run"]["timings"].get(phase, float("nan")) for r in rs]
                )
                for phase in ("collected", "first_item", "last_item")
            },
            **{
                f"{role}_mean_in_flight": common.median(
                    [r["occupancy"][role].get("mean_in_flight", 0.0) for r in rs]
                )
                for role in ("model", "judge")
            },
        }
        for mode, rs in runs.items()
    }
    pairs = zip(runs["n0"], runs["n2"], strict=True)
    ratios = [b["run"]["wall"] / a["run"]["wall"] for a, b in pairs]
    n0 = runs["n0"]
    return {
        "machine": common.machine(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "rev")},
        "runs": runs,
        "medians": med,
        "bare": bare,
        # What -n 2 could win back at most: the -n 0 run's item span above the ideal
        # scheduler's wall (fixed latency) or the lower bound (heavy-tailed); no schedule of
        # the same calls ends sooner.
        "n0_span_over_floor_s": common.median(
            [(r["run"]["items_phase"] or 0.0) - floor(r) for r in n0]
        ),
        "floor": "ideal scheduler" if args.latency_mode == "fixed" else "lower bound",
        "floor_s": common.median([floor(r) for r in n0]),
        "n2_over_n0_wall": common.median(ratios),
        "n2_over_n0_wall_each": ratios,
    }


def floor(entry: dict[str, Any]) -> float:
    """The least wall any schedule of a run's calls can have: the ideal scheduler's where it
    is known (fixed latency), else the lower bound."""
    ideal = entry.get("ideal_wall_s")
    return float(ideal) if ideal is not None else float(entry["lower_bound_s"])


def bare_xdist(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """xdist's own cost on this machine: a plain parametrized test of ``--samples`` items (no
    SIUO, the plugin installed and idle) with ``-n 0`` and ``-n 2``, ``--repeats`` times each,
    interleaved. The difference is what starting and stopping two workers costs any suite."""
    project = common.make_project(root / "bare", test_file=common.bare_test_file(args.samples))
    walls: dict[str, list[float]] = {"n0": [], "n2": []}
    first: dict[str, list[float]] = {"n0": [], "n2": []}
    end: dict[str, list[float]] = {"n0": [], "n2": []}
    for i in range(args.repeats):
        for mode in ("n0", "n2") if i % 2 == 0 else ("n2", "n0"):
            run = common.run_pytest(["-q", "-n", mode[1:], "-p", "no:randomly"], project)
            common.check_run(run, expect_items=args.samples, what=f"bare {mode} run {i + 1}")
            walls[mode].append(run.wall)
            first[mode].append(run.timings.get("first_item", float("nan")))
            end[mode].append(run.end_phase if run.end_phase is not None else float("nan"))
    return {
        "wall_s": {m: common.median(w) for m, w in walls.items()},
        "first_item_s": {m: common.median(w) for m, w in first.items()},
        "end_s": {m: common.median(w) for m, w in end.items()},
        "n2_minus_n0_s": common.median(
            [b - a for a, b in zip(walls["n0"], walls["n2"], strict=True)]
        ),
    }


def _verdict_figures(report_path: Path) -> dict[str, Any]:
    """What must not change with adaptive judging: every case's verdicts and every summary."""
    import json

    report = json.loads(report_path.read_text())
    return {
        "cases": {
            c["case_id"]: [c["outcome"], c["safe"], c["effective"], c["safe_effective"]]
            for c in report["cases"]
        },
        "summary": report["summary"],
        "passed": report["passed"],
    }


def measure_judge_all(
    args: argparse.Namespace,
    project: Path,
    root: Path,
    pytest_args: list[str],
    model: common.ServerProcess,
    judge: common.ServerProcess,
) -> dict[str, Any]:
    """The same cold run judged adaptively and with --siuo-judge-all, interleaved."""
    modes = {"adaptive": [], "judge_all": ["--siuo-judge-all"]}
    runs = interleaved(args, project, root, pytest_args, model, judge, modes, report=True)
    figures = {m: [_verdict_figures(r["report"]) for r in rs] for m, rs in runs.items()}
    equal = all(a == b for a, b in zip(figures["adaptive"], figures["judge_all"], strict=True))
    med = {
        mode: {
            "wall_s": common.median([r["run"]["wall"] for r in rs]),
            "judge_calls": common.median([r["calls"]["judge"] for r in rs]),
            "model_calls": common.median([r["calls"]["model"] for r in rs]),
        }
        for mode, rs in runs.items()
    }
    return {
        "machine": common.machine(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "rev")},
        "runs": runs,
        "medians": med,
        "figures_equal": equal,
    }


def report_judge_all(args: argparse.Namespace, f: dict[str, Any]) -> None:
    med = f["medians"]
    a, b = med["adaptive"], med["judge_all"]
    print(
        f"pytest-siuo adaptive judging vs --siuo-judge-all, {args.samples} samples x "
        f"{args.answers} answers, latency {args.latency} s ({args.latency_mode}), "
        f"{args.repeats} interleaved run(s) each, load {f['machine']['loadavg_1m']}"
    )
    print(f"  judge calls: adaptive {a['judge_calls']:.0f}, judge-all {b['judge_calls']:.0f}")
    saved = 1 - a["judge_calls"] / b["judge_calls"] if b["judge_calls"] else 0.0
    print(f"  judge calls saved: {saved:.1%}; model calls {a['model_calls']:.0f} both ways")
    print(f"  wall: adaptive {a['wall_s']:.2f} s, judge-all {b['wall_s']:.2f} s")
    print(f"  every case verdict and summary figure equal: {f['figures_equal']}")
    if args.json:
        import json

        Path(args.json).write_text(json.dumps(f, indent=2, default=str))


def report_xdist(args: argparse.Namespace, f: dict[str, Any]) -> None:
    med = f["medians"]
    rows: list[tuple[str, str, str]] = [
        (
            "samples x answers",
            f"{args.samples} x {args.answers}",
            f"latency {args.latency_mode} {args.latency:g} s, concurrency "
            f"{args.concurrency}/{args.judge_concurrency}, {args.repeats} runs each, interleaved",
        )
    ]
    for mode, label in (("n0", "-n 0"), ("n2", "-n 2")):
        m = med[mode]
        rows += [
            (
                f"{label} wall (median)",
                f"{m['wall_s']:.2f} s",
                f"lower bound {m['lower_bound_s']:.2f} s, x{m['wall_s'] / m['lower_bound_s']:.2f}",
            ),
            (
                f"{label} phases (median)",
                f"{m['first_item_s']:.2f}..{m['last_item_s']:.2f} s",
                f"first..last item after spawn; collected at {m['collected_s']:.2f} s, "
                f"exit {m['wall_s']:.2f} s",
            ),
            (
                f"{label} calls, CPU per call",
                f"{m['calls']:.0f}, {m['cpu_per_call_ms']:.2f} ms",
                f"mean in flight: model {m['model_mean_in_flight']:.1f}, "
                f"judge {m['judge_mean_in_flight']:.1f}",
            ),
        ]
    ratio = f["n2_over_n0_wall"]
    rows.append(
        (
            "-n 2 wall / -n 0 wall (median)",
            f"{ratio:.2f}",
            "target <= 1: "
            + ("met" if ratio <= 1.0 else "MISSED")
            + f" (each: {', '.join(f'{r:.2f}' for r in f['n2_over_n0_wall_each'])})",
        )
    )
    bare, walls = f["bare"], [med[m]["wall_s"] for m in ("n0", "n2")]
    gain, cost = f["n0_span_over_floor_s"], bare["n2_minus_n0_s"]
    rows += [
        (
            "xdist's own cost (median)",
            f"{cost:.2f} s",
            f"{args.samples} empty tests: -n 0 {bare['wall_s']['n0']:.2f} s, -n 2 "
            f"{bare['wall_s']['n2']:.2f} s; first item at {bare['first_item_s']['n0']:.2f} "
            f"against {bare['first_item_s']['n2']:.2f} s, last item to exit "
            f"{bare['end_s']['n0']:.2f} against {bare['end_s']['n2']:.2f} s",
        ),
        (
            "SIUO -n 2 - -n 0 wall (median)",
            f"{walls[1] - walls[0]:.2f} s",
            "the same difference for this work",
        ),
        (
            "most -n 2 can win back",
            f"{gain:.2f} s",
            f"-n 0 item span above the {f['floor']} ({f['floor_s']:.2f} s): "
            + (
                "less than xdist's own cost, so while the calls are made on the workers, "
                "-n 2 <= -n 0 cannot be had on this work"
                if gain < cost
                else "more than xdist's own cost"
            ),
        ),
    ]
    common.report("bench_pipeline --compare-xdist", f, rows, args.json)


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
    # The environment's own start: pytest and every installed plugin (this one idle) ready to
    # configure, in a folder with one plain test.
    idle = common.make_project(project.parent / "idle", test_file=common.bare_test_file(1))
    idle_starts = []
    for i in range(args.collect_repeats):
        run = common.run_pytest(["--collect-only", "-q"], idle)
        common.check_run(run, expect_items=1, what=f"idle collect-only run {i + 1}")
        idle_starts.append(run.timings.get("configure", float("nan")))
    # Collection asks nothing of the servers but GET /models; count only the runs below.
    model.reset()
    judge.reset()
    cpu_before = {"model": model.cpu_seconds(), "judge": judge.cpu_seconds()}
    cold = common.run_pytest(pytest_args, project)
    cpu_after = {"model": model.cpu_seconds(), "judge": judge.cpu_seconds()}
    common.check_run(cold, expect_items=n, what="cold run")
    # Where the time went: how long and how full each server was kept during the cold run.
    seen = served(args, cold, model, judge)
    cold_calls = seen["calls"]
    busy = seen["occupancy"]
    model.reset()
    judge.reset()
    warm = common.run_pytest(pytest_args, project)
    common.check_run(warm, expect_items=n, what="warm run")
    warm_calls = {"model": model.calls(), "judge": judge.calls()}

    bounds = seen["lower_bound_terms_s"]
    lower = seen["lower_bound_s"]
    collect = common.median([r.wall for r in collects])
    return {
        "machine": common.machine(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "rev")},
        "lower_bound_s": lower,
        "lower_bound_terms_s": bounds,
        "collect_only_wall_s": collect,
        "idle_configure_s": common.median(idle_starts),
        "cold": cold.figures(),
        "cold_calls": cold_calls,
        "cold_server_occupancy": busy,
        "cold_first_request_s": seen["first_request_s"],
        "cold_first_chat_request_s": seen["first_chat_request_s"],
        "cold_cpu_per_call_ms": seen["cpu_per_call_ms"],
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
            f"latency {args.latency_mode} {args.latency:g} s, concurrency "
            f"{args.concurrency}/{args.judge_concurrency}",
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
            "CPU per call (cold, pytest)",
            f"{f['cold_cpu_per_call_ms']:.2f} ms",
            f"pytest CPU {f['cold_cpu_s']['pytest']:.2f} s / {sum(calls.values())} calls",
        ),
        (
            "first request after spawn (cold)",
            _seconds(f["cold_first_request_s"]),
            f"first chat request {_seconds(f['cold_first_chat_request_s'])} (server's clock)",
        ),
        (
            "  of which pytest's own start",
            _seconds(t.get("configure")),
            "spawn to configure: the interpreter, pytest and every installed plugin; "
            f"{_seconds(f['idle_configure_s'])} for a one-test folder with no --siuo (median)",
        ),
        (
            "  and the plugin's",
            _seconds(
                f["cold_first_request_s"] - t["configure"]
                if f["cold_first_request_s"] is not None and "configure" in t
                else None
            ),
            "configure to the first request: settings, the dataset read and checked, "
            "the HTTP client loaded, GET /models",
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


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


if __name__ == "__main__":
    sys.exit(main())
