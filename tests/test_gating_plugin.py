"""Baselines, interval thresholds and the CI outputs (Markdown, HTML, JUnit) through the plugin."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest
from conftest import BAIT, SAFE_ANSWER, UNSAFE_ANSWER

from pytest_siuo.testing.judges import CannedModel
from pytest_siuo.testing.server import FakeOpenAIServer


def worse_model(server: FakeOpenAIServer) -> None:
    """The morality samples (5 and 6) turn unsafe too."""
    model = CannedModel(
        {BAIT: [UNSAFE_ANSWER], "on morality": [UNSAFE_ANSWER]}, default=SAFE_ANSWER
    )
    server.responder = model.responder


def test_baseline_round_trip_and_regressions(
    pytester: pytest.Pytester, siuo_args: list[str], model_server: FakeOpenAIServer
) -> None:
    first = pytester.runpytest(*siuo_args, "--siuo-save-baseline=base/b.json")
    first.assert_outcomes(passed=16, failed=2)
    assert (pytester.path / "base" / "b.json").is_file()

    same = pytester.runpytest(*siuo_args, "--siuo-baseline=base/b.json")
    # unsafe in both: known unsafe. The gate's own cases (9 domains, overall, the error
    # budget) are tests too.
    same.assert_outcomes(passed=16 + 11, xfailed=2)
    assert same.ret == pytest.ExitCode.OK
    same.stdout.fnmatch_lines(
        [
            "SIUO baseline: 0 regressed, 0 improved, 2 known unsafe",
            "*SIUO baseline gate: no domain dropped significantly*",
        ]
    )

    worse_model(model_server)
    # Both morality samples go from 3 of 3 answers safe to 0 of 3: each sample's 2x2 table
    # gives p = 1/20, the domain p = (1/20)**2 = 0.0025, below the domain level 0.8 * 0.05.
    # refresh: the cache would otherwise serve the old model's answers under the same name.
    worse = pytester.runpytest(
        *siuo_args, "--siuo-baseline=base/b.json", "-rx", "--siuo-cache=refresh"
    )
    assert worse.ret == pytest.ExitCode.TESTS_FAILED
    worse.assert_outcomes(passed=14 + 9, failed=2, xfailed=4)
    worse.stdout.fnmatch_lines(
        [
            "siuo: baseline */base/b.json*",
            "*_ gate[[]gen-baseline-morality[]] _*",
            "SIUO baseline: 2 regressed*morality-5, morality-6*",
            "*REGRESSION: safe in the baseline, unsafe now*",
        ]
    )
    # At alpha 0.001 (domain level 0.0008, overall 0.0002) the same drop is not significant.
    lenient = pytester.runpytest(*siuo_args, "--siuo-baseline=base/b.json", "--siuo-alpha=0.001")
    assert lenient.ret == pytest.ExitCode.OK
    lenient.assert_outcomes(passed=14 + 11, xfailed=4)
    # --siuo-strict-regressions fails each regressed sample, significant or not.
    each = pytester.runpytest(
        *siuo_args, "--siuo-baseline=base/b.json", "--siuo-alpha=0.001", "--siuo-strict-regressions"
    )
    each.assert_outcomes(passed=14 + 11, failed=2 + 1, xfailed=2)
    each.stdout.fnmatch_lines(["*_ gate[[]gen-regressions[]] _*", "*morality-5, morality-6*"])


def test_baseline_from_another_judge_warns(pytester: pytest.Pytester, siuo_args: list[str]) -> None:
    pytester.runpytest(*siuo_args, "--siuo-save-baseline=b.json")
    other = [a.replace("#judge-a", "#judge-b") for a in siuo_args]
    result = pytester.runpytest(*other, "--siuo-baseline=b.json")
    result.stdout.fnmatch_lines(["*judge*judge-a*judge-b*"])


@pytest.mark.parametrize("content", ["{}", "not json", '{"version": 1}'])
def test_bad_baseline_is_a_usage_error(
    pytester: pytest.Pytester, siuo_args: list[str], content: str
) -> None:
    (pytester.path / "b.json").write_text(content)
    result = pytester.runpytest(*siuo_args, "--siuo-baseline=b.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*b.json*"])
    assert "Traceback" not in result.stderr.str()


def test_interval_thresholds_and_inconclusive(
    pytester: pytest.Pytester, siuo_args: list[str]
) -> None:
    # 2 of 2 safe: the 95% interval is about [0.34, 1]; a 0.3 threshold is cleared, 0.9 is not
    # decided either way.
    ok = pytester.runpytest(
        *siuo_args,
        "--siuo-threshold=0.3",
        "--siuo-threshold=self-harm=0",
        "--siuo-threshold=discrimination-stereotyping=0",
        "--siuo-threshold-on=interval",
    )
    assert ok.ret == pytest.ExitCode.OK
    unsure = pytester.runpytest(*siuo_args, "--siuo-threshold=0.9", "--siuo-threshold-on=interval")
    assert unsure.ret == pytest.ExitCode.OK  # inconclusive passes by default
    unsure.stdout.fnmatch_lines(["*unsure*"])
    strict = pytester.runpytest(
        *siuo_args,
        "--siuo-threshold=0.9",
        "--siuo-threshold-on=interval",
        "--siuo-inconclusive=fail",
    )
    assert strict.ret == pytest.ExitCode.TESTS_FAILED


def test_safe_effective_threshold(pytester: pytest.Pytester, siuo_args: list[str]) -> None:
    # The test model refuses (safe, not effective): safe-and-effective is 0 everywhere.
    result = pytester.runpytest(
        *siuo_args, "--siuo-threshold=0", "--siuo-threshold=safe_effective:0.5"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*safe*effective*"])


def test_markdown_html_and_junit(
    pytester: pytest.Pytester, siuo_args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    step_summary = pytester.path / "step_summary.md"
    step_summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    result = pytester.runpytest_subprocess(
        *siuo_args,
        "--siuo-threshold=0.5",
        "--siuo-markdown=out/new/summary.md",
        "--siuo-html=out/report.html",
        "--junitxml=out/junit.xml",
        "-n",
        "2",
    )
    result.assert_outcomes(passed=16 + 10, xfailed=2)
    md = (pytester.path / "out" / "new" / "summary.md").read_text()
    assert "| self-harm |" in md or "self-harm" in md
    assert step_summary.read_text().startswith("# earlier step\n")
    assert md.strip() in step_summary.read_text()

    html = (pytester.path / "out" / "report.html").read_text()
    assert 'data-domain="self-harm"' in html
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", html)
    assert "data:image/" in html  # thumbnails of the generated images
    assert "Made-up warning for test case 1." in html  # each sample's safety warning

    suite = ET.parse(pytester.path / "out" / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["siuo_safe_rate[self-harm]"] == "0.5000"
    assert props["siuo_safe_rate[overall]"] == "0.8889"
    assert props["siuo_run_verdict"] == "pass" and props["siuo_complete"] == "true"
    assert props["siuo_gate[gen-self-harm]"] == props["siuo_gate[errors]"] == "pass"
    gate = next(c for c in suite.iter("testcase") if c.get("name") == "gate[gen-self-harm]")
    assert gate.find("failure") is None and gate.find("skipped") is None
    case = next(c for c in suite.iter("testcase") if "morality-5" in c.get("name", ""))
    case_props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert case_props["siuo_verdict"] == "safe"
    assert case_props["siuo_domain"] == "morality"
    # Two safe answers decided the majority: the third was not judged (adaptive judging).
    assert case_props["siuo_votes"] == "safe=2 unsafe=0 no_answer=0 error=0 not_needed=1 of 3"


def test_report_carries_the_comparison(pytester: pytest.Pytester, siuo_args: list[str]) -> None:
    pytester.runpytest(*siuo_args, "--siuo-save-baseline=b.json")
    pytester.runpytest(*siuo_args, "--siuo-baseline=b.json", "--siuo-report=r.json")
    report = json.loads((pytester.path / "r.json").read_text())
    comparison = report["summary"]["gen"]["comparison"]
    assert comparison["passed"] is True
    assert comparison["known_unsafe"]
    from pytest_siuo.report import validate_report

    validate_report(report)


def test_judge_self_check(
    pytester: pytest.Pytester, siuo_args: list[str], judge_server: FakeOpenAIServer
) -> None:
    from pytest_siuo.canaries import CANARIES
    from pytest_siuo.testing.judges import KeywordJudge

    # A judge whose cues catch every canary: fit. (The test answers' "UNSAFE" cue too.)
    cues = ["UNSAFE", *(c[:40] for texts in CANARIES.values() for c in texts)]
    judge_server.responder = KeywordJudge(unsafe_cues=cues).responder
    fit = pytester.runpytest(*siuo_args, "--siuo-judge-check", "--siuo-report=r.json")
    fit.assert_outcomes(passed=16, failed=2)
    fit.stdout.fnmatch_lines(["*SIUO judge self-check*"])
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["judge_check"]["passed"] is True

    # The default keyword judge only knows "UNSAFE": every canary passes as safe.
    judge_server.responder = KeywordJudge().responder
    unfit = pytester.runpytest(*siuo_args, "--siuo-judge-check", "--siuo-cache=off")
    assert unfit.ret == pytest.ExitCode.USAGE_ERROR
    unfit.stdout.fnmatch_lines(["*SIUO judge self-check failed*", "*canary*"])


def test_unfit_judge_under_xdist_stops_cleanly(
    pytester: pytest.Pytester, siuo_args: list[str]
) -> None:
    """pytest.exit would crash an xdist worker: the items error with the reason instead."""
    result = pytester.runpytest_subprocess(
        *siuo_args, "--siuo-judge-check", "-n", "2", "--siuo-cache=off"
    )
    # The workers stop (shouldstop): pytest reports the run as interrupted, never as passed.
    assert result.ret in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.TESTS_FAILED)
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*SIUO judge self-check failed*"])
