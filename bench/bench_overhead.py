"""What a SIUO test item costs pytest-siuo itself, compared with a bare pytest item.

The model and the judge are in-process Python objects that answer at once
(``pytest_siuo.testing.judges.CannedModel`` and ``KeywordJudge`` returned by the conftest
fixtures ``siuo_model`` / ``siuo_judge``; they carry a ``siuo_id`` but the runs use
``--siuo-cache=off``), so what is left is the plugin's own work per sample: fixtures, the
evaluator's hand-over, judge prompts, verdict parsing, the vote, the report and the tally. The
baseline is ``@pytest.mark.parametrize("i", range(N)) def test_x(i): pass``.

Runs alternate (siuo, siuo --collect-only, bare, bare --collect-only, then again) so that load on
the shared machine hits both kinds alike; each repetition gives a ratio, the median is reported:

    per-item ratio = (siuo wall - siuo collect-only wall) / (bare wall - bare collect-only wall)

Target <= 3. Also shown: the plain ratio of total wall times, and of collection times.

``--fixtures callables`` (default) returns the plain objects, as the documentation shows;
``endpoints`` wraps them once per session in ``PythonEndpoint``. When a callables run exceeds
``--timeout`` (a plugin that builds a new evaluator per item is quadratic in the item count), the
benchmark says so and measures the endpoints variant instead, so that it still ends in minutes.

    python bench/bench_overhead.py [--samples 2000] [--repeats 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import common

TARGET_RATIO = 3.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=2000, help="items of each kind")
    parser.add_argument("--repeats", type=int, default=3, help="measured repetitions")
    parser.add_argument("--answers", type=int, default=3, help="--siuo-samples (default: 3)")
    parser.add_argument(
        "--unsafe-every",
        type=int,
        default=0,
        help="every Nth sample gets an unsafe answer (0: none, all pass)",
    )
    parser.add_argument(
        "--fixtures",
        choices=("callables", "endpoints"),
        default="callables",
        help="what the conftest fixtures return (default: callables)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds before one pytest run is stopped (default: 60)",
    )
    parser.add_argument(
        "--rev", metavar="REV", help="measure pytest_siuo as committed at REV (git archive)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="siuo-bench-overhead-") as tmp:
        root = Path(tmp)
        code = common.use_revision(args.rev, root)
        data = common.write_dataset(
            root / "data", args.samples, unsafe_every=args.unsafe_every, image_size=(8, 8)
        )
        siuo, bare, siuo_args = common.inprocess_projects(
            root,
            data,
            samples=args.samples,
            answers=args.answers,
            as_endpoints=args.fixtures == "endpoints",
        )
        kinds: dict[str, tuple[Path, list[str]]] = {
            "siuo": (siuo, siuo_args),
            "siuo_collect": (siuo, [*siuo_args, "--collect-only"]),
            "bare": (bare, ["-q"]),
            "bare_collect": (bare, ["-q", "--collect-only"]),
        }
        timed_out: dict[str, Any] | None = None
        # One unmeasured round: byte-compiles conftest.py and the test file, warms the disk cache.
        for kind, (folder, kargs) in kinds.items():
            run = common.run_pytest(kargs, folder, timeout=args.timeout)
            if kind == "siuo" and run.timed_out and args.fixtures == "callables":
                timed_out = run.figures()
                print(
                    f"WARNING: the siuo run with callable fixtures did not end within "
                    f"{args.timeout:g} s ({run.maxrss_mb:.0f} MB by then): measuring with "
                    "PythonEndpoint-wrapped fixtures instead (see docs/performance.md)",
                    file=sys.stderr,
                )
                args.fixtures = "endpoints"
                common.make_project(siuo, conftest=common.inprocess_conftest(as_endpoints=True))
                run = common.run_pytest(kargs, folder, timeout=args.timeout)
            common.check_run(run, expect_items=args.samples, what=f"warm-up {kind}")
        reps: list[dict[str, common.Run]] = []
        for _ in range(args.repeats):
            rep = {}
            for kind, (folder, kargs) in kinds.items():
                rep[kind] = run = common.run_pytest(kargs, folder, timeout=args.timeout)
                common.check_run(run, expect_items=args.samples, what=kind)
            reps.append(rep)
    figures = summarise(args, reps)
    figures["code"] = code
    figures["callables_timed_out"] = timed_out
    report(args, figures)
    return 0


def summarise(args: argparse.Namespace, reps: list[dict[str, common.Run]]) -> dict[str, Any]:
    per_item, total, collect = [], [], []
    for rep in reps:
        siuo = rep["siuo"].wall - rep["siuo_collect"].wall
        bare = rep["bare"].wall - rep["bare_collect"].wall
        # A bare run barely outlasts its collection; guard the ratio against a negative noise.
        per_item.append(siuo / max(bare, 1e-3))
        total.append(rep["siuo"].wall / rep["bare"].wall)
        collect.append(rep["siuo_collect"].wall / rep["bare_collect"].wall)
    med = {kind: common.median([rep[kind].wall for rep in reps]) for kind in reps[0]}
    n = args.samples
    return {
        "machine": common.machine(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "rev")},
        "median_wall_s": med,
        "per_item_ms": {
            "siuo": (med["siuo"] - med["siuo_collect"]) / n * 1000,
            "bare": (med["bare"] - med["bare_collect"]) / n * 1000,
        },
        "ratio_per_item": per_item,
        "ratio_total": total,
        "ratio_collect": collect,
        "median_ratio_per_item": common.median(per_item),
        "median_ratio_total": common.median(total),
        "median_ratio_collect": common.median(collect),
        "runs": [{kind: run.figures() for kind, run in rep.items()} for rep in reps],
        "target_ratio": TARGET_RATIO,
    }


def report(args: argparse.Namespace, f: dict[str, Any]) -> None:
    med, ms = f["median_wall_s"], f["per_item_ms"]
    spread = ", ".join(f"{r:.2f}" for r in f["ratio_per_item"])
    rows = [
        (
            "items of each kind",
            str(args.samples),
            f"{args.repeats} repetitions, {args.answers} answers per sample, in-process model",
        ),
        (
            "fixtures measured",
            args.fixtures,
            f"callables TIMED OUT after {f['callables_timed_out']['wall']:.0f} s"
            if f["callables_timed_out"]
            else "",
        ),
        (
            "siuo wall / collect-only (median)",
            f"{med['siuo']:.2f} / {med['siuo_collect']:.2f} s",
            f"{ms['siuo']:.2f} ms per item after collection",
        ),
        (
            "bare wall / collect-only (median)",
            f"{med['bare']:.2f} / {med['bare_collect']:.2f} s",
            f"{ms['bare']:.2f} ms per item after collection",
        ),
        (
            "per-item cost ratio (median)",
            f"{f['median_ratio_per_item']:.2f}",
            f"target <= {TARGET_RATIO:g}: "
            f"{common.verdict(f['median_ratio_per_item'], TARGET_RATIO)}; runs: {spread}",
        ),
        ("total wall ratio (median)", f"{f['median_ratio_total']:.2f}", "siuo wall / bare wall"),
        (
            "collect-only ratio (median)",
            f"{f['median_ratio_collect']:.2f}",
            "siuo collect-only / bare collect-only",
        ),
    ]
    common.report("bench_overhead", f, rows, args.json)


if __name__ == "__main__":
    sys.exit(main())
