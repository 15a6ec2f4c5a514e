"""Bad configuration is a usage error (exit 4) naming the fault; a bad sample errors alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_rows

from pytest_siuo.testing.server import FakeOpenAIServer, Fault, Reply


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*args)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "--siuo-domain=self-harmm",
            "*--siuo-domain: unknown SIUO domain 'self-harmm'; use one of: self-harm,*",
        ),
        ("--siuo-threshold=1.5", "*--siuo-threshold*1.5*"),
        ("--siuo-threshold=selfharm=0.5", "*--siuo-threshold*selfharm*"),
        ("--siuo-samples=0", "*--siuo-samples: 0 is too small; use a number >= 1*"),
        ("--siuo-protocol=paper", "*--siuo-protocol: 'paper' is not one of strict, official*"),
        ("--siuo-cache=maybe", "*--siuo-cache: 'maybe' is not one of on, off, refresh, replay*"),
        ("--siuo-model=ftp://host/v1", "*--siuo-model*uses scheme 'ftp'; use http:// or https://*"),
        ("--siuo-model=http://:80/v1", "*--siuo-model*has no host*"),
        ("--siuo-model=python:not a module", "*python:package.module:name*"),
        ("--siuo-judge-key-env=sk-abc123-secret", "*takes the NAME of an environment variable*"),
    ],
)
def test_bad_options_are_usage_errors(
    pytester: pytest.Pytester, siuo_args: list[str], option: str, message: str
) -> None:
    result = run(pytester, *siuo_args, option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()
    assert "sk-abc123-secret" not in result.stderr.str() + result.stdout.str()


def test_bad_ini_value_names_the_ini_key(pytester: pytest.Pytester, siuo_args: list[str]) -> None:
    pytester.makeini("[pytest]\nsiuo_samples = three\n")
    result = run(pytester, *siuo_args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini option 'siuo_samples': 'three' is not a whole number*"])


def test_unreachable_server_stops_at_start(
    pytester: pytest.Pytester, dataset_dir: Path, judge_server: FakeOpenAIServer
) -> None:
    result = run(
        pytester,
        "--siuo",
        "--siuo-model=http://127.0.0.1:9/v1",
        f"--siuo-judge={judge_server.base_url}#judge-a",
        f"--siuo-data={dataset_dir}",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*http://127.0.0.1:9/v1 is unreachable; is the server running?*"])
    assert judge_server.calls == 0


def test_several_models_need_a_name(
    pytester: pytest.Pytester,
    dataset_dir: Path,
    model_server: FakeOpenAIServer,
    judge_server: FakeOpenAIServer,
) -> None:
    result = run(
        pytester,
        "--siuo",
        f"--siuo-model={model_server.base_url}",
        f"--siuo-judge={judge_server.base_url}",
        f"--siuo-data={dataset_dir}",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*serves 2 models (judge-a, judge-b); name one after '#'*"])


def test_missing_model_names_the_fix(pytester: pytest.Pytester, dataset_dir: Path) -> None:
    # A usage error before collection: one line, exit 4, no test run and no call made.
    result = run(pytester, "--siuo", f"--siuo-data={dataset_dir}", "-k", "self-harm")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no model to test: pass --siuo-model=ENDPOINT*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_key_from_named_env_var_is_used_and_never_shown(
    pytester: pytest.Pytester,
    dataset_dir: Path,
    judge_server: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "sk-test-canary-0123456789abcdef"
    monkeypatch.setenv("MY_MODEL_KEY", secret)
    with FakeOpenAIServer(models=["m"], api_key=secret) as server:
        result = run(
            pytester,
            "--siuo",
            f"--siuo-model={server.base_url}",
            "--siuo-model-key-env=MY_MODEL_KEY",
            f"--siuo-judge={judge_server.base_url}#judge-a",
            f"--siuo-data={dataset_dir}",
            "--siuo-report=r.json",
            "-k",
            "morality",
        )
        assert server.calls == 2
    result.assert_outcomes(passed=2)
    everything = result.stdout.str() + result.stderr.str() + (pytester.path / "r.json").read_text()
    assert secret not in everything
    for entry in (pytester.path / ".siuo").rglob("*.json"):
        assert secret not in entry.read_text()


def test_wrong_key_stops_at_start(
    pytester: pytest.Pytester,
    dataset_dir: Path,
    judge_server: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODEL_KEY", "sk-wrong-key-000000000000000")
    right_key = "sk-right-key-" + "1" * 14  # a made-up canary, built so no scanner mistakes it
    with FakeOpenAIServer(models=["m"], api_key=right_key) as server:
        result = run(
            pytester,
            "--siuo",
            f"--siuo-model={server.base_url}#m",
            "--siuo-model-key-env=MODEL_KEY",
            f"--siuo-judge={judge_server.base_url}#judge-a",
            f"--siuo-data={dataset_dir}",
            "-k",
            "morality",
        )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*the server refused the API key (HTTP 401)*"])
    assert "sk-wrong-key" not in result.stdout.str() + result.stderr.str()


def test_model_errors_are_test_errors(
    pytester: pytest.Pytester, siuo_args: list[str], model_server: FakeOpenAIServer
) -> None:
    model_server.responder = lambda req: Fault("status", status=503)
    result = run(pytester, *siuo_args, "--siuo-retries=1", "-k", "morality", "--siuo-report=r.json")
    result.assert_outcomes(errors=2)
    assert model_server.calls == 4  # two samples, one retry each
    result.stdout.fnmatch_lines(
        ["*SIUO evaluation error: morality-5: model: *HTTP 503*(after 2 attempts)*"]
    )
    summary = json.loads((pytester.path / "r.json").read_text())["summary"]["gen"]
    assert summary["domains"]["morality"]["errors"] == 2
    assert summary["domains"]["morality"]["safe_rate"] is None


def test_unreadable_judge_reply_is_asked_again_then_an_error(
    pytester: pytest.Pytester,
    siuo_args: list[str],
    judge_server: FakeOpenAIServer,
) -> None:
    judge_server.responder = lambda req: "I think it is fine."
    result = run(pytester, *siuo_args, "-k", "morality-5")
    result.assert_outcomes(errors=1)
    # One distinct answer (said 3 times) x 2 prompts, each asked twice.
    assert judge_server.calls == 2 * 2
    result.stdout.fnmatch_lines(["*unreadable judge reply (asked twice)*"])


def test_non_answers_are_never_safe(
    pytester: pytest.Pytester,
    siuo_args: list[str],
    model_server: FakeOpenAIServer,
    judge_server: FakeOpenAIServer,
) -> None:
    model_server.responder = lambda req: [
        Reply(""),
        Reply(None, finish_reason="content_filter"),
        Reply("   "),
    ]
    strict = run(pytester, *siuo_args, "-k", "morality-5")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(
        ["*SIUO NO ANSWER: morality-5*0 of 3 answers judged safe, 3 not answers*"]
    )
    assert judge_server.calls == 0  # nothing to judge
    # The official scripts count an empty answer as safe: 2 empty of 3 carry the vote.
    official = run(pytester, *siuo_args, "-k", "morality-5", "--siuo-protocol=official")
    official.assert_outcomes(passed=1)


def test_n_unsupported_falls_back_to_single_requests(
    pytester: pytest.Pytester, siuo_args: list[str], model_server: FakeOpenAIServer
) -> None:
    model_server.supports_n = False
    result = run(pytester, *siuo_args, "-k", "morality")
    result.assert_outcomes(passed=2)
    assert {r.n for r in model_server.requests if r.n} <= {1, 3}
    assert sum(1 for r in model_server.requests if r.n == 1) == 6
    # The footer counts what the server received: the rejected n=3 request(s) and 6 singles.
    sent = len(model_server.requests)
    result.stdout.fnmatch_lines([f"SIUO calls: model 2 (0 cached answers, {sent} HTTP requests)*"])


def test_broken_dataset_row_is_a_usage_error(
    pytester: pytest.Pytester, siuo_args: list[str], tmp_path: Path
) -> None:
    from pytest_siuo.testing.data import write_official

    rows = make_rows()
    rows[3]["category"] = "selfharm"
    del rows[5]["safety_warning"]
    folder = write_official(tmp_path / "bad", rows, mcqa=False)
    args = [a for a in siuo_args if not a.startswith("--siuo-data")]
    result = run(pytester, *args, f"--siuo-data={folder}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "siuo_gen.json row 4 (question_id 4)" in err and "selfharm" in err
    assert "safety_warning" in err
    assert "Traceback" not in err


def test_missing_image_errors_only_its_sample(
    pytester: pytest.Pytester, siuo_args: list[str], tmp_path: Path
) -> None:
    from pytest_siuo.testing.data import write_official

    folder = write_official(tmp_path / "d", make_rows(), mcqa=False)
    (folder / "images" / "img-005.png").unlink()
    args = [a for a in siuo_args if not a.startswith("--siuo-data")]
    result = run(pytester, *args, f"--siuo-data={folder}", "-k", "morality")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*SIUO evaluation error: morality-5: image 'img-005.png'*"])


def test_openai_key_is_not_sent_to_other_servers(
    pytester: pytest.Pytester,
    dataset_dir: Path,
    judge_server: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OPENAI_API_KEY is for OpenAI: a self-hosted server gets it only when named."""
    secret = "sk-openai-only-2222222222222222"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    with FakeOpenAIServer(models=["m"], api_key=secret) as server:
        common = [
            f"--siuo-judge={judge_server.base_url}#judge-a",
            f"--siuo-data={dataset_dir}",
            "-k",
            "morality",
            "--siuo",
            f"--siuo-model={server.base_url}#m",
        ]
        refused = run(pytester, *common)
        named = run(pytester, *common, "--siuo-model-key-env=OPENAI_API_KEY")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*refused the API key (HTTP 401)*"])
    named.assert_outcomes(passed=2)
