"""Peak memory of a large SIUO run, compared with a bare pytest run of as many items.

A 10,000-sample synthetic dataset, the in-process model and judge of ``bench_overhead`` (conftest
fixtures, ``--siuo-cache=off``), and four fresh pytest processes: siuo ``--collect-only``, the
full siuo run, and the same two for ``@pytest.mark.parametrize("i", range(N))``. The peak RSS of
each child is its own ``ru_maxrss`` (``os.wait4``). Target: the full siuo run stays under 400 MB.

``--endpoints http``: the model and the judge are instead the loopback servers of
``bench_pipeline`` (``bench/serve.py``, separate processes, ``--latency`` seconds per request),
so every answer and verdict goes through the HTTP client; the peak RSS printed is the pytest
process's.

    python bench/bench_memory.py [--samples 10000] [--json FILE]
    python bench/bench_memory.py --endpoints http [--latency 0.05 --concurrency 64]

``--unsafe-every K --report``: every K-th sample is answered unsafely (its test fails) and the
JSON report is written, so the "end of the run" row (last item to exit: pytest's failure
summary, the SIUO summary and the outputs) measures the issue-15 target of under 10 s.

    python bench/bench_memory.py --unsafe-every 2 --report
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import common

TARGET_MB = 400.0
END_TARGET_S = 10.0  # issue 15: the end of a 10,000-sample run with many unsafe samples


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10_000, help="items of each kind")
    parser.add_argument("--answers", type=int, default=3, help="--siuo-samples (default: 3)")
    parser.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        default=(64, 48),
        metavar=("W", "H"),
        help="synthetic image size in pixels",
    )
    parser.add_argument(
        "--fixtures",
        choices=("callables", "endpoints"),
        default="endpoints",
        help="what the conftest fixtures return (default: endpoints, see "
        "bench_overhead.py: callables are quadratic in the item count)",
    )
    parser.add_argument(
        "--endpoints",
        choices=("inprocess", "http"),
        default="inprocess",
        help="in-process model and judge (default) or the loopback HTTP servers",
    )
    parser.add_argument(
        "--latency", type=float, default=0.05, help="--endpoints http: seconds per request"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=64,
        help="--endpoints http: --siuo-concurrency and --siuo-judge-concurrency",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=180.0,
        help="seconds before one pytest run is stopped; a stopped run's peak "
        "RSS is a lower bound (default: 180)",
    )
    parser.add_argument(
        "--unsafe-every",
        type=int,
        default=0,
        metavar="K",
        help="every K-th sample gets unsafe answers, so its test fails (default 0: none); "
        "the end of the run (last item to exit) is then pytest's failure summary",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="also write the JSON report (--siuo-report), part of the end of the run",
    )
    parser.add_argument(
        "--rev", metavar="REV", help="measure pytest_siuo as committed at REV (git archive)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="siuo-bench-memory-") as tmp:
        root = Path(tmp)
        code = common.use_revision(args.rev, root)
        data = common.write_dataset(
            root / "data",
            args.samples,
            unsafe_every=args.unsafe_every,
            image_size=tuple(args.image_size),
        )
        siuo, bare, siuo_args = common.inprocess_projects(
            root,
            data,
            samples=args.samples,
            answers=args.answers,
            as_endpoints=args.fixtures == "endpoints",
        )
        with contextlib.ExitStack() as stack:
            if args.endpoints == "http":
                model = stack.enter_context(common.ServerProcess("model", latency=args.latency))
                judge = stack.enter_context(common.ServerProcess("judge", latency=args.latency))
                siuo = common.make_project(root / "siuo-http")
                siuo_args = [
                    *siuo_args,
                    f"--siuo-model={model.base_url}#bench-vlm",
                    f"--siuo-judge={judge.base_url}#bench-judge",
                    f"--siuo-concurrency={args.concurrency}",
                    f"--siuo-judge-concurrency={args.concurrency}",
                ]
            if args.report:
                siuo_args = [*siuo_args, "--siuo-report=report.json"]
            kinds: dict[str, tuple[Path, list[str]]] = {
                "bare_collect": (bare, ["-q", "--collect-only"]),
                "bare": (bare, ["-q"]),
                "siuo_collect": (siuo, [*siuo_args, "--collect-only"]),
                "siuo": (siuo, siuo_args),
            }
            runs: dict[str, common.Run] = {}
            for kind, (folder, kargs) in kinds.items():
                runs[kind] = run = common.run_pytest(kargs, folder, timeout=args.timeout)
                common.check_run(run, expect_items=args.samples, what=kind)
    figures = {
        "machine": common.machine(),
        "code": code,
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "rev")},
        "peak_rss_mb": {kind: run.maxrss_mb for kind, run in runs.items()},
        "timed_out": [kind for kind, run in runs.items() if run.timed_out],
        "ratio_run": runs["siuo"].maxrss_mb / runs["bare"].maxrss_mb,
        "ratio_collect": runs["siuo_collect"].maxrss_mb / runs["bare_collect"].maxrss_mb,
        "runs": {kind: run.figures() for kind, run in runs.items()},
        "target_mb": TARGET_MB,
        "end_s": runs["siuo"].end_phase,
        "end_target_s": END_TARGET_S,
    }
    report(args, figures, runs)
    return 0


def report(args: argparse.Namespace, f: dict[str, Any], runs: dict[str, common.Run]) -> None:
    mb = f["peak_rss_mb"]

    def shown(kind: str) -> str:
        run = runs[kind]
        # A stopped run only shows how much it had reached.
        return (
            f">= {mb[kind]:.0f} MB (stopped after {run.wall:.0f} s)"
            if run.timed_out
            else f"{mb[kind]:.0f} MB"
        )

    siuo = mb["siuo"]
    rows = [
        (
            "items of each kind",
            str(args.samples),
            f"{args.answers} answers per sample, "
            + (
                f"HTTP model and judge ({args.latency:g} s, concurrency {args.concurrency}), "
                if args.endpoints == "http"
                else f"in-process model ({args.fixtures}), "
            )
            + f"images {args.image_size[0]}x{args.image_size[1]}",
        ),
        (
            "siuo collect-only peak RSS",
            shown("siuo_collect"),
            f"x{f['ratio_collect']:.2f} of bare collect-only ({mb['bare_collect']:.0f} MB)",
        ),
        (
            "siuo run peak RSS",
            shown("siuo"),
            f"target < {TARGET_MB:.0f} MB: "
            + (
                "not known (stopped)"
                if runs["siuo"].timed_out and siuo < TARGET_MB
                else common.verdict(siuo, TARGET_MB)
            ),
        ),
        ("bare run peak RSS", shown("bare"), f"siuo / bare = x{f['ratio_run']:.2f}"),
        ("siuo run wall", f"{runs['siuo'].wall:.1f} s", f"bare run {runs['bare'].wall:.1f} s"),
        (
            "end of the siuo run (last item to exit)",
            "not known" if f["end_s"] is None else f"{f['end_s']:.1f} s",
            f"{runs['siuo'].failed} failed tests"
            + (", JSON report written" if args.report else "")
            + f"; target < {END_TARGET_S:.0f} s: "
            + ("not known" if f["end_s"] is None else common.verdict(f["end_s"], END_TARGET_S)),
        ),
    ]
    common.report("bench_memory", f, rows, args.json)


if __name__ == "__main__":
    sys.exit(main())
