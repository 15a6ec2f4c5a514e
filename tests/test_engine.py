"""The evaluation engine through the plugin: cache modes, answers files, budgets, retries."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pytest_siuo.testing.server import FakeOpenAIServer, Fault, FaultPlan


def test_replay_never_calls_and_names_what_is_missing(
    pytester: pytest.Pytester,
    siuo_args: list[str],
    model_server: FakeOpenAIServer,
    judge_server: FakeOpenAIServer,
) -> None:
    pytester.runpytest(*siuo_args, "-k", "morality").assert_outcomes(passed=2)
    model_server.reset()
    judge_server.reset()
    replay = pytester.runpytest(*siuo_args, "-k", "morality or self-harm", "--siuo-cache=replay")
    assert model_server.calls == 0 and judge_server.calls == 0
    replay.assert_outcomes(passed=2, errors=2)
    replay.stdout.fnmatch_lines(["*--siuo-cache=replay: no cached answer 1 of self-harm-1*"])


def test_refresh_recomputes_and_off_writes_nothing(
    pytester: pytest.Pytester,
    siuo_args: list[str],
    model_server: FakeOpenAIServer,
) -> None:
    pytester.runpytest(*siuo_args, "-k", "morality", "--siuo-cache=off")
    assert not (pytester.path / ".siuo").exists()
    pytester.runpytest(*siuo_args, "-k", "morality")
    model_server.reset()
    pytester.runpytest(*siuo_args, "-k", "morality", "--siuo-cache=refresh")
    assert model_server.calls == 2


def test_changing_the_judge_rejudges_without_asking_the_model(
    pytester: pytest.Pytester,
    siuo_args: list[str],
    model_server: FakeOpenAIServer,
    judge_server: FakeOpenAIServer,
) -> None:
    pytester.runpytest(*siuo_args, "-k", "morality").assert_outcomes(passed=2)
    model_server.reset()
    judge_server.reset()
    other = [a.replace("#judge-a", "#judge-b") for a in siuo_args]
    pytester.runpytest(*other, "-k", "morality").assert_outcomes(passed=2)
    assert model_server.calls == 0
    assert judge_server.calls == 2 * 2  # per sample: one distinct answer x 2 prompts


def test_unwritable_cache_dir_is_a_usage_error(
    pytester: pytest.Pytester, siuo_args: list[str]
) -> None:
    blocker = pytester.path / "blocker"
    blocker.write_text("a file, not a folder")
    result = pytester.runpytest(*siuo_args, f"--siuo-cache-dir={blocker}/cache")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*cache folder*is not writable*--siuo-cache=off*"])


def test_save_answers_then_judge_them_without_a_model(
    pytester: pytest.Pytester,
    siuo_args: list[str],
    judge_server: FakeOpenAIServer,
    dataset_dir: Path,
) -> None:
    first = pytester.runpytest(*siuo_args, "--siuo-save-answers=answers.json")
    first.assert_outcomes(passed=16, failed=2)
    rows = json.loads((pytester.path / "answers.json").read_text())
    assert len(rows) == 18
    row = next(r for r in rows if r["question_id"] == 1)
    assert set(row) >= {
        "question_id",
        "image",
        "question",
        "category",
        "safety_warning",
        "reference_answer",
        "responses",
    }
    assert len(row["responses"]) == 3 and "UNSAFE" in row["responses"][0]
    # Make sample 2 unsafe in the file: the verdict follows the file, no model is called.
    next(r for r in rows if r["question_id"] == 2)["responses"] = ["UNSAFE"] * 3
    (pytester.path / "edited.json").write_text(json.dumps(rows))
    judge_only = [a for a in siuo_args if not a.startswith("--siuo-model")]
    second = pytester.runpytest(*judge_only, "--siuo-answers=edited.json", "-k", "self-harm")
    second.assert_outcomes(failed=2)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "*answers file*not JSON*"),
        ('{"a": 1}', "*top level is a dict without a question_id; expected a list of rows*"),
        (
            '[{"question_id": 999, "responses": ["a", "b", "c"]}]',
            "*row 1 (question_id 999): no gen sample with this question_id*",
        ),
        (
            '[{"question_id": 1, "responses": ["a"]}]',
            "*row 1 (question_id 1): 1 responses, but this run needs 3 per sample*",
        ),
        (
            '[{"question_id": 1, "responses": ["a", 2, "c"]}]',
            "*row 1 (question_id 1): responses?1? is not text (int); every answer must be text*",
        ),
    ],
)
def test_bad_answers_file(
    pytester: pytest.Pytester, siuo_args: list[str], content: str, message: str
) -> None:
    (pytester.path / "a.json").write_text(content)
    judge_only = [a for a in siuo_args if not a.startswith("--siuo-model")]
    result = pytester.runpytest(*judge_only, "--siuo-answers=a.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_token_budget_stops_new_calls(
    pytester: pytest.Pytester, siuo_args: list[str], model_server: FakeOpenAIServer
) -> None:
    result = pytester.runpytest(
        *siuo_args, "--siuo-max-tokens=1", "--siuo-concurrency=1", "--siuo-judge-concurrency=1"
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors", 0) >= 16
    result.stdout.fnmatch_lines(["*token budget spent*--siuo-max-tokens*"])
    assert model_server.calls <= 2


def test_transient_faults_are_retried_to_the_same_figures(
    pytester: pytest.Pytester,
    siuo_args: list[str],
    model_server: FakeOpenAIServer,
    judge_server: FakeOpenAIServer,
) -> None:
    faults = [
        Fault("status", status=429, retry_after=0.01),
        Fault("status", status=502),
        Fault("drop"),
        Fault("garbage"),
    ]
    model_server.faults = FaultPlan(0.3, faults, seed=1)
    judge_server.faults = FaultPlan(0.3, faults, seed=2)
    result = pytester.runpytest(*siuo_args, "--siuo-report=r.json")
    result.assert_outcomes(passed=16, failed=2)
    assert model_server.faults.injected > 0 and judge_server.faults.injected > 0
    usage = json.loads((pytester.path / "r.json").read_text())["usage"]
    assert usage["model"]["failures"] == model_server.faults.injected
    assert usage["judge"]["failures"] == judge_server.faults.injected


def test_garbage_body_is_retried_then_an_error(
    pytester: pytest.Pytester, siuo_args: list[str], model_server: FakeOpenAIServer
) -> None:
    model_server.responder = lambda req: Fault("garbage")
    result = pytester.runpytest(*siuo_args, "-k", "morality-5", "--siuo-retries=2")
    result.assert_outcomes(errors=1)
    assert model_server.calls == 3
    result.stdout.fnmatch_lines(["*malformed response*not a chat completion*(after 3 attempts)*"])


def test_exitfirst_cancels_outstanding_work(
    pytester: pytest.Pytester, siuo_args: list[str], model_server: FakeOpenAIServer
) -> None:
    model_server.latency = 0.5
    result = pytester.runpytest(*siuo_args, "-x", "--siuo-concurrency=2")
    result.assert_outcomes(failed=1)
    # -x stops after the first failure: what was in flight may finish, and while the loop
    # shuts down a queued sample may still start (7 seen on a loaded machine); the other half
    # is never asked. The bound is loose on purpose: it must not depend on the machine's load.
    time.sleep(0.6)
    assert model_server.calls <= 9  # of 18: the rest was cancelled


def test_usage_is_summed_over_xdist_workers(
    pytester: pytest.Pytester, siuo_args: list[str]
) -> None:
    result = pytester.runpytest_subprocess(*siuo_args, "-n", "2", "--siuo-report=r.json")
    result.assert_outcomes(passed=16, failed=2)
    result.stdout.fnmatch_lines(["SIUO calls: model 18 (0 cached answers), judge 36*"])
    usage = json.loads((pytester.path / "r.json").read_text())["usage"]
    assert usage["model"]["calls"] == 18 and usage["judge"]["calls"] == 36


def test_max_errors_tolerates_then_fails(
    pytester: pytest.Pytester, siuo_args: list[str], model_server: FakeOpenAIServer
) -> None:
    broken = (5, 7, 13, 16)  # one sample in each of four domains: each keeps one verdict
    base = model_server.responder

    def responder(request):  # type: ignore[no-untyped-def]
        if any(f"Test question {n} " in request.text() for n in broken):
            return Fault("status", status=500)
        return base(request)

    model_server.responder = responder
    args = [*siuo_args, "--siuo-retries=0"]
    default = pytester.runpytest(*args)
    default.assert_outcomes(passed=12, failed=2, errors=4)
    tolerated = pytester.runpytest(*args, "--siuo-max-errors=4", "--siuo-threshold=0.5")
    tolerated.assert_outcomes(passed=12 + 10, xfailed=6)  # + 9 domain gates and the error budget
    assert tolerated.ret == pytest.ExitCode.OK
    exceeded = pytester.runpytest(*args, "--siuo-max-errors=3", "--siuo-threshold=0.5")
    assert exceeded.ret == pytest.ExitCode.TESTS_FAILED
    exceeded.stdout.fnmatch_lines(
        [
            "SIUO: 4 sample(s) ended without a verdict, more than --siuo-max-errors=3 allows;*",
            "SIUO verdict: FAILED (1 of 10 gate case(s) failed: siuo::gate[errors])",
        ]
    )
