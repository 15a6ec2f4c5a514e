"""``pytest -n 2`` against ``-n 0`` on the same work: wall time and calls in flight.

A 167-sample synthetic dataset, a model server (three distinct answers per sample) and a judge
server (safety and effectiveness), each in its own process on 127.0.0.1, and cold-cache
``pytest --siuo`` runs that alternate ``-n 0`` and ``-n 2`` (``-p no:xdist`` for ``-n 0``).
Latency is either fixed (``--latency 0.2``) or heavy-tailed (``--heavy-tail``: per request,
log-normal with a median of 2 s, and 5% of requests at 20-30 s, drawn from a hash of the
request so that both runs meet the same latencies). The servers record when each request
arrived and was answered: mean and peak calls in flight are measured from their side.

    python bench/bench_xdist.py [--latency 0.2 | --heavy-tail] [--repeats 3] [--json FILE]

Target: median wall of ``-n 2`` <= median wall of ``-n 0`` (issue 15).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import common

# ------------------------------------------------------------------------------ server


def heavy_tail_delay(key: str) -> float:
    """A request's latency in the heavy-tailed mode: a function of its content alone."""
    digest = hashlib.sha256(key.encode()).digest()
    u1 = (int.from_bytes(digest[0:4], "big") + 0.5) / 2**32
    u2 = (int.from_bytes(digest[4:8], "big") + 0.5) / 2**32
    u3 = (int.from_bytes(digest[8:12], "big") + 0.5) / 2**32
    if u1 < 0.05:
        return 20.0 + 10.0 * u2
    # Log-normal, median 2 s (Box-Muller from two uniforms; sigma 0.5: mostly 0.7-5 s).
    z = math.sqrt(-2.0 * math.log(u2)) * math.cos(2.0 * math.pi * u3)
    return 2.0 * math.exp(0.5 * z)


def serve(role: str, latency: float, heavy_tail: bool) -> int:
    """The server process: bench/serve.py's model or judge, with a latency mode of its own
    and the (arrival, answer) time of every request. Protocol: the base URL on the first line,
    then ``stats`` / ``reset`` commands on stdin, one JSON line back each."""
    sys.path.insert(0, str(common.BENCH_DIR))
    from serve import bench_model

    from pytest_siuo.testing.judges import KeywordJudge
    from pytest_siuo.testing.server import FakeOpenAIServer

    inner: Any = bench_model().responder if role == "model" else KeywordJudge().responder
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    def responder(request: Any) -> Any:
        start = time.time()
        time.sleep(heavy_tail_delay(request.key()) if heavy_tail else latency)
        reply = inner(request)
        with lock:
            spans.append((start, time.time()))
        return reply

    model_id = "bench-vlm" if role == "model" else "bench-judge"
    server = FakeOpenAIServer(responder, models=[model_id]).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(server.base_url, flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "reset":
                server.reset()
                with lock:
                    spans.clear()
                print(json.dumps({"ok": True}), flush=True)
            else:
                with lock:
                    got = list(spans)
                print(json.dumps({"calls": server.calls, "spans": got}), flush=True)
    finally:
        server.stop()
    return 0


class Server:
    """A :func:`serve` process."""

    def __init__(self, role: str, args: argparse.Namespace) -> None:
        cmd = [sys.executable, __file__, "--serve", role, "--latency", str(args.latency)]
        if args.heavy_tail:
            cmd.append("--heavy-tail")
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=common.clean_env()
        )
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http://"):
            self.stop()
            raise RuntimeError(f"{role} server did not start (said {self.base_url!r})")

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        reply: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return reply

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def in_flight(spans: Sequence[Sequence[float]]) -> dict[str, float]:
    """Mean (between the first arrival and the last answer) and peak requests in flight, and
    the summed request time (seconds)."""
    if not spans:
        return {"mean": 0.0, "peak": 0, "busy_s": 0.0}
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    busy = sum(b - a for a, b in spans)
    span = max(b for _, b in spans) - min(a for a, _ in spans)
    return {"mean": round(busy / span, 2) if span > 0 else 0.0, "peak": peak, "busy_s": busy}


# ------------------------------------------------------------------------------ runs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=167, help="dataset size (default: 167)")
    parser.add_argument("--answers", type=int, default=3, help="--siuo-samples (default: 3)")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per request")
    parser.add_argument(
        "--heavy-tail",
        action="store_true",
        help="heavy-tailed latency (median 2 s, 5%% of requests at 20-30 s) instead",
    )
    parser.add_argument("--concurrency", type=int, default=32, help="--siuo-concurrency")
    parser.add_argument("--judge-concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="-n of the xdist runs")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, interleaved")
    parser.add_argument("--rev", metavar="REV", help="measure pytest_siuo as committed at REV")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--serve", choices=("model", "judge"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.serve, args.latency, args.heavy_tail)

    systems = {"-n 0": ["-p", "no:xdist"], f"-n {args.workers}": ["-n", str(args.workers)]}
    loads: list[float] = []
    with tempfile.TemporaryDirectory(prefix="siuo-bench-xdist-") as tmp:
        root = Path(tmp)
        code = common.use_revision(args.rev, root)
        data = common.write_dataset(root / "data", args.samples, unsafe_every=20)
        project = common.make_project(root / "project")
        model, judge = Server("model", args), Server("judge", args)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in systems}
        try:
            for rep in range(args.repeats):
                # Alternate which system goes first, so a drift of the machine's load
                # weighs on both alike.
                order = list(systems) if rep % 2 == 0 else list(reversed(systems))
                for name in order:
                    model.ask("reset")
                    judge.ask("reset")
                    cache = root / f"cache-{rep}-{name.replace(' ', '')}"
                    pytest_args = [
                        "-q",
                        "--siuo",
                        f"--siuo-model={model.base_url}#bench-vlm",
                        f"--siuo-judge={judge.base_url}#bench-judge",
                        f"--siuo-data={data}",
                        f"--siuo-samples={args.answers}",
                        f"--siuo-concurrency={args.concurrency}",
                        f"--siuo-judge-concurrency={args.judge_concurrency}",
                        f"--siuo-cache-dir={cache}",
                        "-p",
                        "no:randomly",
                        *systems[name],
                    ]
                    loads.append(os.getloadavg()[0])
                    run = common.run_pytest(pytest_args, project, timeout=1800.0)
                    # The controller of an xdist run collects nothing: count its tests there.
                    expect = args.samples if name == "-n 0" else run.items
                    common.check_run(run, expect_items=expect, what=f"{name} run {rep + 1}")
                    stats = {"model": model.ask("stats"), "judge": judge.ask("stats")}
                    figures = {
                        "wall_s": run.wall,
                        "cpu_s": run.cpu_s,
                        "returncode": run.returncode,
                        "calls": {r: int(s["calls"]) for r, s in stats.items()},
                        "in_flight": {r: in_flight(s["spans"]) for r, s in stats.items()},
                    }
                    runs[name].append(figures)
                    print(
                        f"{name} run {rep + 1}: {run.wall:.1f} s wall, exit {run.returncode}, "
                        f"calls {figures['calls']}, in flight "
                        + ", ".join(
                            f"{r} mean {f['mean']:.1f} peak {f['peak']}"
                            for r, f in figures["in_flight"].items()
                        )
                        + f", load {loads[-1]:.2f}",
                        flush=True,
                    )
        finally:
            model.stop()
            judge.stop()
    report(args, code, runs, loads)
    return 0


def report(
    args: argparse.Namespace, code: str, runs: dict[str, list[dict[str, Any]]], loads: list[float]
) -> None:
    serial, parallel = list(runs)
    med = {name: common.median([r["wall_s"] for r in rs]) for name, rs in runs.items()}
    ratio = med[parallel] / med[serial]
    # Lower bound of one run: each pool's summed request time over its limit (the two
    # pools overlap at best), from the -n 0 runs' own requests.
    first = runs[serial][0]
    bound = max(
        first["in_flight"]["model"]["busy_s"] / args.concurrency,
        first["in_flight"]["judge"]["busy_s"] / args.judge_concurrency,
    )
    mode = "heavy-tailed latency" if args.heavy_tail else f"latency {args.latency:g} s"
    rows = [
        (
            "samples x answers",
            f"{args.samples} x {args.answers}",
            f"{mode}, concurrency {args.concurrency}/{args.judge_concurrency}",
        ),
        ("lower bound (two pools)", f"{bound:.1f} s", "summed request time / limit, per pool"),
    ]
    for name, rs in runs.items():
        walls = ", ".join(f"{r['wall_s']:.1f}" for r in rs)
        rows.append((f"{name} wall (median)", f"{med[name]:.1f} s", f"runs {walls}"))
        for role, limit in (("model", args.concurrency), ("judge", args.judge_concurrency)):
            means = [r["in_flight"][role]["mean"] for r in rs]
            peaks = [r["in_flight"][role]["peak"] for r in rs]
            rows.append(
                (
                    f"{name} {role} calls in flight",
                    f"mean {common.median(means):.1f}",
                    f"peak {max(peaks)} (limit {limit}); calls {rs[0]['calls'][role]}",
                )
            )
        rows.append(
            (
                f"{name} CPU (pytest + workers)",
                f"{common.median([r['cpu_s'] for r in rs]):.1f} s",
                "median",
            )
        )
    rows.append(
        (
            f"{parallel} / {serial} wall",
            f"{ratio:.2f}",
            "target <= 1.00: " + ("met" if ratio <= 1.0 else f"MISSED by {ratio - 1:.0%}"),
        )
    )
    rows.append(
        (
            "load average (1 min)",
            f"{common.median(loads):.2f}",
            f"median at run starts (min {min(loads):.2f}, max {max(loads):.2f})",
        )
    )
    figures = {
        "machine": common.machine(),
        "code": code,
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "rev", "serve")},
        "runs": runs,
        "median_wall_s": med,
        "ratio": ratio,
        "lower_bound_s": bound,
        "loadavg_at_starts": loads,
    }
    common.report("bench_xdist", figures, rows, args.json)


if __name__ == "__main__":
    sys.exit(main())
