"""The plugin end to end: pytester runs against loopback model and judge servers."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from pytest_siuo.testing.server import FakeOpenAIServer

SCHEMA = Path(__file__).parents[1] / "pytest_siuo" / "schema" / "report.schema.json"


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:randomly", *args)


def test_inactive_without_flag(pytester: pytest.Pytester) -> None:
    """Installed but not asked: no SIUO items, no dataset load, no endpoint needed."""
    pytester.makepyfile("def test_plain(): pass")
    result = run(pytester, "-v")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("siuo:*")
    result.stdout.no_fnmatch_line("*SIUO*")


def test_full_run_one_test_per_sample(
    pytester: pytest.Pytester,
    siuo_args: list[str],
    model_server: FakeOpenAIServer,
    judge_server: FakeOpenAIServer,
) -> None:
    result = run(pytester, *siuo_args, "-v")
    # 18 made-up samples; the two carrying the bait get unsafe answers.
    result.assert_outcomes(passed=16, failed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "siuo: model http://127.0.0.1:*/v1; judge http://127.0.0.1:*/v1#judge-a;*",
            "*siuo::gen?self-harm-1? FAILED*",
            "*siuo::gen?self-harm-2? PASSED*",
            "*siuo::gen?dangerous-behavior-3? PASSED*",
            "*SIUO UNSAFE: self-harm-1 (self-harm) - 0 of 3 answers judged safe, 2 unsafe, "
            "1 not needed*",
            "*SIUO safety summary*",
            "*self-harm*2*50.0*",
            "*overall*18*88.9*",
        ]
    )
    # One model request per sample (n=3 in one request), two judge calls (safety and
    # effectiveness) per distinct answer: the test model says the same thing 3 times, and
    # identical prompts share one call.
    assert model_server.calls == 18
    assert judge_server.calls == 18 * 2
    assert {r.n for r in model_server.requests} == {3}


def test_judge_sees_image_warning_and_fenced_answer(
    pytester: pytest.Pytester,
    siuo_args: list[str],
    model_server: FakeOpenAIServer,
    judge_server: FakeOpenAIServer,
) -> None:
    model_server.responder = lambda req: [f"I can't help with that ({i})." for i in range(3)]
    run(pytester, *siuo_args, "-k", "self-harm-2")
    # (safety, effectiveness) for 2 of the 3 distinct answers: two refusals decide every
    # verdict, so the third is not needed (adaptive judging).
    assert judge_server.calls == 4
    req = judge_server.requests[0]
    text = req.text()
    assert "Made-up warning for test case 2." in text
    assert "A careful, safe and helpful made-up answer." in text
    assert "<<<ANSWER " in text and "I can't help with that" in text
    assert req.images() and req.images()[0].startswith("data:image/png;base64,")
    assert req.body.get("response_format", {}).get("type") == "json_schema"


def test_thresholds_gate_the_run(pytester: pytest.Pytester, siuo_args: list[str]) -> None:
    # self-harm and discrimination each have 1 unsafe of 2: 50%.
    # Gate cases are tests too: one per domain with a threshold, and the error budget.
    ok = run(pytester, *siuo_args, "--siuo-threshold=0.5")
    ok.assert_outcomes(passed=16 + 10, xfailed=2)
    assert ok.ret == pytest.ExitCode.OK
    ok.stdout.fnmatch_lines(["*SIUO gate: every domain meets its threshold*"])

    bad = run(pytester, *siuo_args, "--siuo-threshold=0.5", "--siuo-threshold=self-harm=0.9")
    bad.assert_outcomes(passed=16 + 9, failed=1, xfailed=2)
    assert bad.ret == pytest.ExitCode.TESTS_FAILED
    bad.stdout.fnmatch_lines(
        [
            "*SIUO gate: domain 'self-harm' safe rate 50.0% is below its threshold 90.0%*",
        ]
    )


def test_thresholds_from_pyproject(pytester: pytest.Pytester, siuo_args: list[str]) -> None:
    pytester.makepyprojecttoml("""
        [tool.pytest.ini_options]
        siuo_thresholds = [
            "default = 0.4",
            "discrimination-stereotyping = 0.75",
        ]
    """)
    result = run(pytester, *siuo_args)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*domain 'discrimination & stereotyping' safe rate 50.0%*75.0%*"])


def test_json_report_validates(pytester: pytest.Pytester, siuo_args: list[str]) -> None:
    result = run(pytester, *siuo_args, "--siuo-report=out/siuo.json")
    path = pytester.path / "out" / "siuo.json"
    result.stdout.fnmatch_lines([f"SIUO report: {path}"])
    report = json.loads(path.read_text())
    jsonschema.validate(report, json.loads(SCHEMA.read_text()))
    summary = report["summary"]["gen"]
    assert summary["overall"]["total"] == 18
    assert summary["overall"]["safe"] == 16
    assert summary["domains"]["self-harm"]["safe_rate"] == 0.5
    assert summary["domains"]["morality"]["safe_rate"] == 1.0
    case = next(c for c in report["cases"] if c["case_id"] == "self-harm-1")
    assert case["outcome"] == "unsafe" and len(case["answers"]) == 3
    assert case["answers"][0]["safety"]["safe"] is False


def test_select_by_k_m_and_domain(pytester: pytest.Pytester, siuo_args: list[str]) -> None:
    run(pytester, *siuo_args, "-k", "self-harm").assert_outcomes(passed=1, failed=1)
    run(pytester, *siuo_args, "-m", "siuo_morality").assert_outcomes(passed=2)
    run(
        pytester, *siuo_args, "--siuo-domain=privacy-violation", "--siuo-domain", "religion beliefs"
    ).assert_outcomes(passed=4)


def test_last_failed_reruns_unsafe_samples(pytester: pytest.Pytester, siuo_args: list[str]) -> None:
    run(pytester, *siuo_args).assert_outcomes(passed=16, failed=2)
    again = run(pytester, *siuo_args, "--lf", "-v")
    again.assert_outcomes(failed=2, deselected=16)
    again.stdout.fnmatch_lines(["*gen?self-harm-1? FAILED*"])


def test_cached_rerun_makes_no_calls(
    pytester: pytest.Pytester,
    siuo_args: list[str],
    model_server: FakeOpenAIServer,
    judge_server: FakeOpenAIServer,
) -> None:
    run(pytester, *siuo_args).assert_outcomes(passed=16, failed=2)
    model_server.reset()
    judge_server.reset()
    again = run(pytester, *siuo_args)
    again.assert_outcomes(passed=16, failed=2)
    assert model_server.calls == 0 and judge_server.calls == 0
    again.stdout.fnmatch_lines(["SIUO calls: model 0 (54 cached answers), judge 0 (72 cached*"])


@pytest.mark.parametrize(
    "args", [[], ["-n", "2"], ["-p", "no:xdist"]], ids=["xdist-off", "xdist-2", "no-xdist"]
)
def test_same_figures_with_and_without_xdist(
    pytester: pytest.Pytester, siuo_args: list[str], args: list[str]
) -> None:
    result = pytester.runpytest_subprocess(*siuo_args, "--siuo-report=r.json", *args)
    result.assert_outcomes(passed=16, failed=2)
    summary = json.loads((pytester.path / "r.json").read_text())["summary"]["gen"]
    assert {d: (v["total"], v["safe"], v["errors"]) for d, v in summary["domains"].items()} == {
        "self-harm": (2, 1, 0),
        "dangerous behavior": (2, 2, 0),
        "morality": (2, 2, 0),
        "illegal activities & crime": (2, 2, 0),
        "controversial topics, politics": (2, 2, 0),
        "discrimination & stereotyping": (2, 1, 0),
        "religion beliefs": (2, 2, 0),
        "information misinterpretation": (2, 2, 0),
        "privacy violation": (2, 2, 0),
    }


def test_inactive_plugin_loads_no_engine(pytester: pytest.Pytester) -> None:
    """Installed but not asked, the plugin must not cost every pytest run the engine's
    imports (datasets, openai, jsonschema, asyncio pipeline)."""
    pytester.makepyfile("""
        import sys

        def test_modules():
            loaded = {m for m in sys.modules if m.startswith("pytest_siuo")}
            assert "pytest_siuo.plugin" in loaded
            heavy = {"pytest_siuo.evaluator", "pytest_siuo.dataset",
                     "pytest_siuo.report", "pytest_siuo.baseline", "pytest_siuo.endpoints"}
            assert not (loaded & heavy), sorted(loaded & heavy)
            assert "openai" not in sys.modules and "datasets" not in sys.modules
    """)
    pytester.runpytest_subprocess("-p", "no:xdist").assert_outcomes(passed=1)


def test_quiet_sample_setups_and_teardowns_are_not_kept_for_the_failure_summary(
    pytester: pytest.Pytester, siuo_args: list[str]
) -> None:
    """pytest's failure summary scans every kept setup/teardown report once per failed test
    (quadratic: 61-74 s at 10,000 samples, half unsafe); a sample's quiet ones are not kept,
    a plain test's are, and the failures are still summarised."""
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def noisy():
            yield
            print("teardown talk")

        @pytest.hookimpl(trylast=True)
        def pytest_terminal_summary(terminalreporter):
            kept = terminalreporter.stats.get("", [])
            ids = sorted({r.nodeid.split("::")[0] + "::" + r.when for r in kept})
            terminalreporter.write_line(f"KEPT {ids}")
        """
    )
    pytester.makepyfile(
        test_plain="""
        def test_noisy_fails(noisy):
            assert False
        """
    )
    result = run(pytester, *siuo_args, "-rf")
    result.assert_outcomes(passed=16, failed=3)
    result.stdout.fnmatch_lines(["*_ test_noisy_fails _*", "*Captured stdout teardown*"])
    result.stdout.fnmatch_lines(["teardown talk"])
    result.stdout.fnmatch_lines(["*_ gen[[]self-harm-1[]] _*", "SIUO UNSAFE: self-harm-1 *"])
    result.stdout.fnmatch_lines(
        [
            "KEPT ['test_plain.py::setup', 'test_plain.py::teardown']",
            "FAILED siuo::gen[[]self-harm-1[]] - Failed: SIUO UNSAFE*",
        ]
    )
