"""``python -m pytest_siuo render|compare`` as a user runs it: a subprocess on reports that a
real pytester run of the plugin wrote, against the loopback servers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BAIT, SAFE_ANSWER, UNSAFE_ANSWER

from pytest_siuo.testing.judges import CannedModel
from pytest_siuo.testing.server import FakeOpenAIServer


def siuo(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_siuo", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _worse(server: FakeOpenAIServer) -> None:
    """Both morality samples now answer unsafely, every time."""
    model = CannedModel(
        {BAIT: [UNSAFE_ANSWER], "on morality": [UNSAFE_ANSWER]}, default=SAFE_ANSWER
    )
    server.responder = model.responder


@pytest.fixture
def runs(pytester: pytest.Pytester, siuo_args: list[str], model_server: FakeOpenAIServer) -> Path:
    """base.json (a baseline run), same.json (unchanged model, with its Markdown and HTML)
    and worse.json (morality regressed, with its Markdown and HTML)."""
    # Every answer judged: an adaptive report is a weaker baseline (docs/verdicts.md).
    pytester.runpytest(
        *siuo_args, "--siuo-samples=3", "--siuo-report=base.json", "--siuo-judge-all"
    )
    same = pytester.runpytest(
        *siuo_args,
        "--siuo-samples=3",
        "--siuo-baseline=base.json",
        "--siuo-report=same.json",
        "--siuo-markdown=same.md",
        "--siuo-html=same.html",
    )
    assert same.ret == pytest.ExitCode.OK
    _worse(model_server)
    worse = pytester.runpytest(
        *siuo_args,
        "--siuo-samples=3",
        "--siuo-baseline=base.json",
        "--siuo-cache=refresh",
        "--siuo-report=worse.json",
        "--siuo-markdown=worse.md",
        "--siuo-html=worse.html",
    )
    assert worse.ret == pytest.ExitCode.TESTS_FAILED
    return pytester.path


def test_render_writes_what_the_plugin_wrote(runs: Path) -> None:
    for name in ("same", "worse"):
        done = siuo(
            "render",
            f"{name}.json",
            "--markdown",
            f"r-{name}.md",
            "--html",
            f"r-{name}.html",
            cwd=runs,
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""  # images found, verdict rebuilt as recorded
        assert (runs / f"r-{name}.md").read_bytes() == (runs / f"{name}.md").read_bytes()
        # The HTML shows the report's own date, so it is equal as it is.
        assert (runs / f"r-{name}.html").read_text() == (runs / f"{name}.html").read_text()
        assert f"SIUO markdown: r-{name}.md" in done.stdout
    assert "morality" in (runs / "r-worse.md").read_text()
    assert 'class="thumb"' in (runs / "r-worse.html").read_text()


def test_render_terminal_prints_the_summary(runs: Path) -> None:
    done = siuo("render", "worse.json", "--terminal", cwd=runs)
    assert done.returncode == 0, done.stderr
    assert "SIUO safety summary" in done.stdout
    assert re.search(r"^morality +2 +0\.0 .* FAIL$", done.stdout, re.M), done.stdout
    assert "SIUO verdict: FAILED" in done.stdout


def test_render_without_images_says_so(runs: Path, tmp_path: Path) -> None:
    done = siuo(
        "render",
        "same.json",
        "--html",
        "x.html",
        "--siuo-data",
        tmp_path / "nothing",
        cwd=runs,
    )
    assert done.returncode == 0, done.stderr
    assert "images not shown" in done.stderr and "--siuo-data DIR" in done.stderr
    html = (runs / "x.html").read_text()
    assert 'class="thumb"' not in html and 'class="thumb none"' in html


def test_render_needs_the_baseline_the_run_was_compared_with(runs: Path) -> None:
    (runs / "base.json").rename(runs / "elsewhere.json")
    done = siuo("render", "worse.json", "--markdown", "x.md", cwd=runs)
    assert done.returncode == 2
    assert "base.json" in done.stderr and "--baseline FILE" in done.stderr
    done = siuo(
        "render", "worse.json", "--markdown", "x.md", "--baseline", "elsewhere.json", cwd=runs
    )
    assert done.returncode == 0, done.stderr
    assert "Against the baseline" in (runs / "x.md").read_text()


def test_compare_exit_status_follows_the_baseline_gate(runs: Path) -> None:
    same = siuo("compare", "base.json", "same.json", cwd=runs)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "SIUO compare: PASSED" in same.stdout
    assert re.search(r"^morality +2 +0 +0 +100\.0 +100\.0 +±0\.0 +pass$", same.stdout, re.M)
    worse = siuo("compare", "base.json", "worse.json", cwd=runs)
    assert worse.returncode == 1, worse.stdout + worse.stderr
    assert re.search(
        r"^morality +2 +2 +0 +100\.0 +0\.0 .* fail \(regressed\)$", worse.stdout, re.M
    ), worse.stdout
    # The same gate cases as the plugin decided for that run.
    recorded = json.loads((runs / "worse.json").read_text())["gate_cases"]
    failed = [c["nodeid"] for c in recorded if not c["passed"]]
    assert failed and all(f"FAILED {nodeid}:" in worse.stdout for nodeid in failed)
    # A looser alpha still fails (p is tiny); the unchanged run passes at any alpha.
    assert siuo("compare", "base.json", "same.json", "--alpha", "0.5", cwd=runs).returncode == 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, r"report missing\.json: no such file; pass a JSON report written by --siuo-report"),
        ("{not json", r"report bad\.json is not valid JSON.*regenerate it with --siuo-report"),
        ('{"version": 2}', r"report bad\.json is not a valid pytest-siuo report \(\$: .*\)"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(runs: Path, content: str | None, expected: str) -> None:
    name = "missing.json" if content is None else "bad.json"
    if content is not None:
        (runs / name).write_text(content)
    for argv in (("render", name), ("compare", "base.json", name)):
        done = siuo(*argv, cwd=runs)
        assert done.returncode == 2, done.stdout
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert re.search(expected, done.stderr), done.stderr


def test_compare_of_different_tracks_is_bad_input(runs: Path) -> None:
    report = json.loads((runs / "same.json").read_text())
    for case in report["cases"]:
        case["track"] = "mcqa"
    report["summary"] = {"mcqa": report["summary"]["gen"]}
    report["settings"]["tracks"] = ["mcqa"]
    report["selection"] = None
    (runs / "mcqa.json").write_text(json.dumps(report))
    done = siuo("compare", "base.json", "mcqa.json", cwd=runs)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "compare reports of the same track" in done.stderr


def test_compare_with_a_report_that_evaluated_nothing_is_bad_input(
    runs: Path, pytester: pytest.Pytester, siuo_args: list[str]
) -> None:
    # A run stopped in its first sample writes a report with no case (complete: false).
    pytester.makeconftest("def pytest_runtest_setup(item):\n    raise KeyboardInterrupt\n")
    pytester.runpytest_subprocess(*siuo_args, "--siuo-report=empty.json")
    assert json.loads((runs / "empty.json").read_text())["cases"] == []
    for argv in (("base.json", "empty.json"), ("empty.json", "base.json")):
        done = siuo("compare", *argv, cwd=runs)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.strip() == (
            "python -m pytest_siuo compare: empty.json has no evaluated case (complete: "
            "false); pass the report of a run that evaluated its samples"
        )


def test_report_module_still_writes_the_schema() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest_siuo.report"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.startswith("rewrote ")
