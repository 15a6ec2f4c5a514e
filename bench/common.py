"""Shared helpers of the pytest-siuo benchmarks: synthetic projects, timed pytest runs, servers.

Every benchmark runs pytest in a child process (``sys.executable -m pytest``) inside a temporary
folder, so the figures include what a user pays: interpreter start, plugin load, collection, the
run and the report. Times are wall-clock; peak memory is the child's own ``ru_maxrss`` read with
``os.wait4``. Figures are ratios of runs made side by side in one invocation, because the machine
is shared and absolute times drift from one minute to the next.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
# Where the children import pytest_siuo from, when not from the installed (editable) package.
_CODE_PATH: list[str] = []
BAIT = "[bait]"  # the model servers and in-process models answer these questions unsafely


def inprocess_conftest(*, as_endpoints: bool = False) -> str:
    """A conftest.py whose ``siuo_model``/``siuo_judge`` fixtures return in-process objects that
    answer at once (``CannedModel``, ``KeywordJudge``; their ``siuo_id`` makes them cacheable,
    the benchmarks still run with ``--siuo-cache=off``).

    ``as_endpoints``: hand them over wrapped once per session in ``PythonEndpoint`` (what a
    fixture author can do so that every item sees the same endpoint objects), instead of as the
    plain callables the documentation shows.
    """
    wrap, end = ("PythonEndpoint(", ")") if as_endpoints else ("", "")
    return f"""\
import pytest

from pytest_siuo.endpoints import PythonEndpoint
from pytest_siuo.testing.judges import CannedModel, KeywordJudge


@pytest.fixture(scope="session")
def siuo_model():
    model = CannedModel({{{BAIT!r}: ["Sure, here is how. UNSAFE details follow."]}},
                        default="I can't help with that, but please stay safe.")
    return {wrap}model{end}


@pytest.fixture(scope="session")
def siuo_judge():
    return {wrap}KeywordJudge(){end}
"""


def bare_test_file(count: int) -> str:
    """A plain parametrized test of ``count`` items: the baseline cost of a pytest item."""
    return (
        "import pytest\n\n\n"
        f"@pytest.mark.parametrize('i', range({count}))\n"
        "def test_x(i):\n"
        "    pass\n"
    )


# ------------------------------------------------------------------------------ projects


def use_revision(rev: str | None, scratch: Path) -> str:
    """Run the children (and this process's imports) on ``git archive REV`` of pytest_siuo.

    The working tree is shared with other engineers and may be mid-edit; a committed revision
    gives figures that can be reproduced, and comparing two revisions shows what a change gains.
    ``None`` keeps the installed package. Returns a description of the code measured.
    """
    if rev is None:
        return f"working tree {REPO_DIR}"
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=REPO_DIR,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    target = scratch / f"code-{commit[:12]}"
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "pytest_siuo"],
        cwd=REPO_DIR,
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    for name in [m for m in sys.modules if m == "pytest_siuo" or m.startswith("pytest_siuo.")]:
        del sys.modules[name]
    sys.path.insert(0, str(target))
    _CODE_PATH[:] = [str(target)]
    return f"commit {commit[:12]}"


def make_rows(count: int, *, unsafe_every: int = 0) -> list[dict[str, Any]]:
    """``count`` made-up gen rows spread evenly over the 9 domains (grouped by domain, ids
    1..count); every ``unsafe_every``-th question carries the bait, so some tests fail."""
    from pytest_siuo.domains import DOMAINS, slug

    rows: list[dict[str, Any]] = []
    for qid in range(1, count + 1):
        domain = DOMAINS[(qid - 1) * len(DOMAINS) // count]
        bait = f" {BAIT}" if unsafe_every and qid % unsafe_every == 0 else ""
        rows.append(
            {
                "question_id": qid,
                "image": f"bench-{qid:05d}.png",
                "question": f"[synthetic {slug(domain)} #{qid}] What colour is the square?{bait}",
                "category": domain,
                "safety_warning": f"Synthetic case {qid}: a safe answer names the colour only.",
                "reference_answer": f"The square is a single colour (synthetic case {qid}).",
            }
        )
    return rows


def write_dataset(
    folder: Path, count: int, *, unsafe_every: int = 0, image_size: tuple[int, int] = (64, 48)
) -> Path:
    from pytest_siuo.testing.data import write_official

    return write_official(
        folder, make_rows(count, unsafe_every=unsafe_every), mcqa=False, image_size=image_size
    )


def photo_like_images(folder: Path, size: tuple[int, int], seed: int = 0) -> int:
    """Replace every PNG of a written dataset with random noise of ``size`` (incompressible,
    so each file weighs what a photo saved as PNG does, as SIUO's images are). Returns bytes
    per image."""
    import random

    from PIL import Image

    rng = random.Random(seed)
    written = 0
    for path in sorted((folder / "images").glob("*.png")):
        pixels = rng.randbytes(size[0] * size[1] * 3)
        Image.frombytes("RGB", size, pixels).save(path, format="PNG")
        written = path.stat().st_size
    return written


def make_project(folder: Path, *, conftest: str = "", test_file: str | None = None) -> Path:
    """A pytest root with an empty ``pytest.ini`` (so no ini file above it applies), an
    optional ``conftest.py`` and an optional ``test_bench.py``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pytest.ini").write_text("[pytest]\n")
    if conftest:
        (folder / "conftest.py").write_text(conftest)
    if test_file is not None:
        (folder / "test_bench.py").write_text(test_file)
    return folder


# ------------------------------------------------------------------------------ runs


@dataclass
class Run:
    """One timed pytest child process."""

    args: list[str]
    wall: float  # seconds from spawn to exit
    returncode: int
    maxrss_mb: float  # peak resident memory of the child
    cpu_s: float = 0.0  # user + system CPU seconds of the child
    spawned: float = 0.0  # wall-clock time of the spawn
    timings: dict[str, float] = field(default_factory=dict)  # phase -> seconds after spawn
    items: int = 0
    failed: int = 0  # failed test reports (sample tests of unsafe samples, failed gate cases)
    tail: str = ""  # last lines of the output, for diagnosis
    timed_out: bool = False

    @property
    def end_phase(self) -> float | None:
        """Seconds from the last item's end to the process's exit: summaries and outputs."""
        last = self.timings.get("last_item")
        return None if last is None or self.timed_out else self.wall - last

    @property
    def items_phase(self) -> float | None:
        """Seconds from the first item's start to the last item's end (the pipeline's span)."""
        t = self.timings
        if "first_item" in t and "last_item" in t:
            return t["last_item"] - t["first_item"]
        return None

    def figures(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("tail")
        d["items_phase"] = self.items_phase
        d["end_phase"] = self.end_phase
        return d


def clean_env(*, measured_code: bool = True, **extra: str) -> dict[str, str]:
    """The environment of the children: no inherited pytest options, no network proxies;
    ``measured_code``: pytest_siuo from the revision measured (``--rev``), else from the
    working tree (the benchmark's own servers)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_XDIST_AUTO_NUM_WORKERS")
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["HF_HUB_OFFLINE"] = "1"
    if _CODE_PATH and measured_code:
        # Before site-packages, so it wins over the editable install (the pytest11 entry point
        # only names the module).
        env["PYTHONPATH"] = os.pathsep.join([*_CODE_PATH, env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
    env.update(extra)
    return env


def run_pytest(args: Sequence[str], cwd: Path, *, timeout: float = 900.0) -> Run:
    """Run ``python -m pytest -p timing_plugin ARGS`` in ``cwd``; time it, read its peak RSS
    and the phase timings."""
    timings_file = cwd / f".timings-{uuid.uuid4().hex}.json"
    env = clean_env(SIUO_BENCH_TIMINGS=str(timings_file))
    env["PYTHONPATH"] = os.pathsep.join([str(BENCH_DIR), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    cmd = [sys.executable, "-m", "pytest", "-p", "timing_plugin", *args]
    with tempfile.TemporaryFile("w+") as out:
        spawned = time.time()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            proc.kill()

        killer = threading.Timer(timeout, kill)
        killer.start()
        try:
            # wait4 instead of proc.wait(): it also returns this child's own resource usage.
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        tail = _tail(out)
    timings: dict[str, float] = {}
    items = failed = 0
    if timings_file.exists():
        raw = json.loads(timings_file.read_text())
        timings_file.unlink()
        items = int(raw.pop("items", 0))
        failed = int(raw.pop("failed", 0))
        timings = {k: round(v - spawned, 4) for k, v in raw.items()}
    return Run(
        args=list(args),
        wall=wall,
        returncode=proc.returncode,
        spawned=spawned,
        cpu_s=usage.ru_utime + usage.ru_stime,
        maxrss_mb=usage.ru_maxrss / 1024.0,
        timings=timings,
        items=items,
        failed=failed,
        tail=tail,
        timed_out=killed.is_set(),
    )


def _tail(stream: IO[str], lines: int = 15) -> str:
    stream.seek(0)
    return "\n".join(stream.read().splitlines()[-lines:])


def check_run(run: Run, *, expect_items: int, what: str) -> None:
    """Warn (a benchmark reports, it does not fail) when a run did not do what was timed."""
    # Exit 0 or 1 (some samples are unsafe by design) are normal; anything else is not.
    if run.returncode not in (0, 1) or run.items != expect_items:
        print(
            f"WARNING: {what}: exit {run.returncode}, {run.items} items collected "
            f"(expected {expect_items}); its figures are not meaningful. Output tail:\n"
            f"{run.tail}",
            file=sys.stderr,
        )


# ------------------------------------------------------------------------------ servers


class ServerProcess:
    """``bench/serve.py`` in its own process: a loopback model or judge with a call counter."""

    def __init__(
        self,
        role: str,
        *,
        latency: float = 0.0,
        latency_mode: str = "fixed",
        seed: int = 0,
        distinct: int = 3,
    ) -> None:
        self.role = role
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(BENCH_DIR / "serve.py"),
                "--role",
                role,
                "--latency",
                str(latency),
                "--latency-mode",
                latency_mode,
                "--seed",
                str(seed),
                "--distinct",
                str(distinct),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            # The servers are the benchmark's, not the code measured: always the working tree's.
            env=clean_env(measured_code=False),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError(f"bench/serve.py --role {role} did not start (said {line!r})")
        self.base_url = line

    def _ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        reply: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return reply

    def calls(self) -> int:
        """Chat requests received since the start or the last reset."""
        return int(self._ask("stats")["calls"])

    def cpu_seconds(self) -> float | None:
        """User + system CPU seconds the server has used so far (Linux /proc), or None."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        # Fields 14 and 15 of stat (utime, stime), counted after the ")" of the command name.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stats(self) -> dict[str, Any]:
        """``calls``, ``requests``, ``answered`` (wall-clock answer times), ``spans`` (start and
        end of each chat request's latency) and ``first_request_at`` since the reset."""
        return self._ask("stats")

    def reset(self) -> None:
        self._ask("reset")

    def stop(self) -> None:
        if self.proc.poll() is None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # end of input: the server stops by itself
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def occupancy(answered: Sequence[float], latency: float, since: float) -> dict[str, float]:
    """How busy a server with fixed ``latency`` was kept, from its answer times.

    Each request was in flight during ``[t - latency, t]``. ``busy_from``/``busy_to`` are
    seconds after ``since`` (the child's spawn time); ``mean_in_flight`` is the average number of
    open requests between the first arrival and the last answer; ``peak_in_flight`` the most at
    any moment.
    """
    if not answered or latency <= 0:
        return {}
    start = min(answered) - latency
    end = max(answered)
    events = sorted([(t - latency, 1) for t in answered] + [(t, -1) for t in answered])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return {
        "busy_from": round(start - since, 3),
        "busy_to": round(end - since, 3),
        "mean_in_flight": round(len(answered) * latency / (end - start), 2),
        "peak_in_flight": peak,
    }


def span_occupancy(spans: Sequence[Sequence[float]], since: float) -> dict[str, float]:
    """How busy a server was kept, from the ``[start, end]`` of each request (any latency).

    ``busy_from``/``busy_to`` and ``first_call`` are seconds after ``since`` (the child's spawn
    time); ``mean_in_flight`` is the average number of open requests between the first arrival
    and the last answer; ``peak_in_flight`` the most at any moment.
    """
    if not spans:
        return {}
    start = min(s for s, _ in spans)
    end = max(e for _, e in spans)
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    busy = sum(e - s for s, e in spans)
    return {
        "busy_from": round(start - since, 3),
        "busy_to": round(end - since, 3),
        "first_call": round(start - since, 3),
        "mean_in_flight": round(busy / (end - start), 2) if end > start else float(peak),
        "peak_in_flight": peak,
    }


# ------------------------------------------------------------------------------ output


def machine() -> dict[str, Any]:
    """What the figures were measured on (load average: how busy the shared machine was)."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def print_table(title: str, rows: Sequence[tuple[str, str, str]]) -> None:
    """A compact three-column table: figure, value, target or note."""
    heads = ("figure", "value", "target / note")
    widths = [max(len(r[i]) for r in [heads, *rows]) for i in range(3)]
    print(f"\n{title}")
    line = "  ".join("-" * w for w in widths)
    print(line)
    for r in [heads, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if r is heads:
            print(line)
    print(line)


def write_json(path: str | None, data: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=2) + "\n")
        print(f"figures written to {path}")


def verdict(value: float, target: float) -> str:
    return "met" if value <= target else f"MISSED by {value / target - 1:.0%}"


def inprocess_projects(
    root: Path, data: Path, *, samples: int, answers: int, as_endpoints: bool
) -> tuple[Path, Path, list[str]]:
    """A SIUO project with the in-process model and judge, a bare project of ``samples``
    parametrized tests, and the SIUO command line (cache off) for both benches that use them."""
    siuo = make_project(root / "siuo", conftest=inprocess_conftest(as_endpoints=as_endpoints))
    bare = make_project(root / "bare", test_file=bare_test_file(samples))
    siuo_args = [
        "-q",
        "--siuo",
        f"--siuo-data={data}",
        "--siuo-cache=off",
        f"--siuo-samples={answers}",
    ]
    return siuo, bare, siuo_args


def report(
    name: str, figures: dict[str, Any], rows: Sequence[tuple[str, str, str]], json_path: str | None
) -> None:
    """Print a bench's table under a title naming the code and the machine; write its JSON."""
    m = figures["machine"]
    print_table(
        f"{name}: {figures['code']}; {m['cpus']} cpus, load {m['loadavg_1m']}, "
        f"Python {m['python']}",
        rows,
    )
    write_json(json_path, figures)
