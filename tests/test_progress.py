"""Progress lines while samples run: the pure formatting, and real runs against a slow
loopback model, with and without xdist."""

from __future__ import annotations

import pytest

from pytest_siuo.progress import ProgressMeter, progress_line, sum_counts
from pytest_siuo.testing.server import FakeOpenAIServer


def test_a_line_says_how_far_the_run_is() -> None:
    counts = sum_counts(
        [
            {"done": 30, "model_in_flight": 2, "model_calls": 40, "judge_calls": 100},
            {
                "done": 10,
                "model_in_flight": 1,
                "model_calls": 12,
                "judge_calls": 80,
                "judge_in_flight": 12,
                "judge_failures": 2,
                "judge_rate_limited": 1,
                "model_tokens": 45,
                "judge_tokens": 123_411,
            },
        ]
    )
    assert progress_line(counts, 167, 65.0) == (
        "SIUO progress: 40/167 samples done, model 3 in flight (52 calls), judge 12 in flight "
        "(180 calls), 2 failed calls (1 rate-limited), 123,456 tokens, 1m05s elapsed, "
        "ETA 3m26s"
    )
    # Nothing done yet: no ETA; a cached run says what the cache served.
    assert progress_line({"model_cached": 5}, 10, 3.0) == (
        "SIUO progress: 0/10 samples done, model 0 in flight (0 calls, 5 cached), 3s elapsed"
    )


def test_the_meter_waits_one_interval_and_never_runs_at_zero() -> None:
    meter = ProgressMeter(10.0, start=100.0)
    assert [meter.due(t) for t in (105.0, 110.0, 115.0, 120.5, 121.0)] == [
        False,
        True,
        False,
        True,
        False,
    ]
    off = ProgressMeter(0.0, start=0.0)
    assert not any(off.due(t) for t in (1.0, 100.0, 1e6))


@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["no-xdist", "xdist"])
def test_a_slow_model_run_prints_progress(
    pytester: pytest.Pytester,
    siuo_args: list[str],
    model_server: FakeOpenAIServer,
    xdist: tuple[str, ...],
) -> None:
    # The model takes at least 0.3 s per call, lines are due every 0.05 s: lines must appear.
    model_server.latency = 0.3
    args = [*siuo_args, *xdist, "-p", "no:randomly", "-k", "morality or self-harm"]
    # In a subprocess: only there does pytest's output capture hold the real stdout.
    result = pytester.runpytest_subprocess(*args, "--siuo-progress=0.05", "--siuo-cache=off")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # two unsafe samples, no gate
    lines = [ln for ln in result.stdout.lines if ln.startswith("SIUO progress: ")]
    assert lines, result.stdout.str()
    assert all(" samples done" in ln and " elapsed" in ln for ln in lines)
    assert any("/4 samples done" in ln for ln in lines)  # the selection's 4 samples
    if not xdist:
        # Written while the first test waits for its sample (no sample is done yet), past
        # pytest's output capture: on the terminal as it happens, not in a failed test's
        # "Captured stdout" section at the end.
        out = result.stdout.lines
        end = next(i for i, ln in enumerate(out) if ln.startswith("=") and "FAILURES" in ln)
        assert any(ln.startswith("SIUO progress: 0/4 samples done") for ln in out[:end]), out
    # Off with 0, and under -qq.
    for quiet in (["--siuo-progress=0"], ["--siuo-progress=0.05", "-qq"]):
        again = pytester.runpytest(*args, "--siuo-cache=off", *quiet)
        assert "SIUO progress:" not in again.stdout.str()


def test_a_run_without_samples_prints_no_progress(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        "import time\n\ndef test_slow():\n    time.sleep(0.2)\n\ndef test_b():\n    pass\n"
    )
    result = pytester.runpytest("--siuo-progress=0.01", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    assert "SIUO progress" not in result.stdout.str()
