"""Hostile servers and first-run mistakes, end to end: nothing leaks, nothing hangs, nothing lies.

Each test runs the real plugin (pytester) against loopback servers whose faults come from
``FakeOpenAIServer``/``Fault``, called by the real ``openai`` client, and asserts the outcome,
the exit code and the one-line message. docs/reliability.md has the table of what each fault
gives.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import BAIT, SAFE_ANSWER, UNSAFE_ANSWER, test_model

from pytest_siuo.testing.judges import KeywordJudge
from pytest_siuo.testing.server import (
    ESCAPE_ANSWER,
    ChatRequest,
    FakeOpenAIServer,
    Fault,
    FaultPlan,
)

DOMAIN = "self-harm"  # -k selects its 2 samples: question 1 (bait) and question 2


def canary(name: str) -> str:
    return f"sk-canary-{name}-" + hashlib.sha256(name.encode()).hexdigest()[:20]


MODEL_KEY = canary("model")
JUDGE_KEY = canary("judge")
PASSWORD = canary("password")
QUERY_KEY = canary("query")
WRONG_KEY = canary("wrong")
SECRETS = {
    "model key": MODEL_KEY,
    "judge key": JUDGE_KEY,
    "url password": PASSWORD,
    "basic auth": base64.b64encode(f"user:{PASSWORD}".encode()).decode(),
    "query key": QUERY_KEY,
    "wrong key": WRONG_KEY,
}
AUTH_HEADER = re.compile(r"(bearer|basic)\s+(?!<redacted>)[A-Za-z0-9._~+/=-]{6,}", re.I)


def leaks(text: str) -> list[str]:
    found = [name for name, secret in SECRETS.items() if secret in text]
    if AUTH_HEADER.search(text):
        found.append("an Authorization header")
    return found


def output(result: pytest.RunResult) -> str:
    return result.stdout.str() + "\n" + result.stderr.str()


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:randomly", "--siuo-retry-backoff=0.01", *args)


def one_line_usage_error(result: pytest.RunResult, *, fix_lines: int = 0) -> str:
    """The usage error's message, checked to be one line with no traceback (exit code 4),
    followed by ``fix_lines`` lines saying what to do."""
    text = output(result)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, text
    assert "Traceback" not in text and "INTERNALERROR" not in text, text
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr.lines
    lines = [ln for ln in result.stderr.lines if ln.strip()]
    assert lines[0] == errors[0] and len(lines) == 1 + fix_lines, result.stderr.lines
    return errors[0]


# ------------------------------------------------------------------------------------------
# 1. Redaction at the boundary


def test_echoing_gateways_leak_no_key_anywhere(
    pytester: pytest.Pytester, dataset_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gateways that echo the Authorization header into error bodies, answers and judge
    replies, the model reached with a key and a URL password, the judge through
    OPENAI_BASE_URL with OPENAI_API_KEY: no secret reaches the terminal or any file."""
    monkeypatch.setenv("SIUO_MODEL_KEY", MODEL_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", JUDGE_KEY)
    model = test_model()

    def model_responder(request: ChatRequest) -> object:
        text = request.text()
        if "question 3 " in text or "question 4 " in text:
            return Fault("echo", status=500)  # errors whose message is the echo
        if "question 5 " in text or "question 6 " in text:
            return Fault("echo", status=200)  # answers that are the echo
        return model.responder(request)

    judge = KeywordJudge()
    outputs: dict[str, str] = {}
    with (
        # The URL's user:password goes as Basic auth (it replaces the Bearer key): the model
        # server echoes that; the judge server echoes the Bearer OPENAI_API_KEY.
        FakeOpenAIServer(model_responder, models=["m"]) as model_server,
        FakeOpenAIServer(judge.responder, models=["gpt-judge"], api_key=JUDGE_KEY) as judge_server,
    ):
        # A share of judge calls echoes too, on every attempt: judge errors carry the echo.
        judge_server.faults = FaultPlan(
            0.15, [Fault("echo", status=500), Fault("echo", status=502)], seed=3, permanent=True
        )
        monkeypatch.setenv("OPENAI_BASE_URL", judge_server.base_url)
        model_url = model_server.base_url.replace("http://", f"http://user:{PASSWORD}@")
        common = [
            "--siuo",
            f"--siuo-model={model_url}#m",
            "--siuo-model-key-env=SIUO_MODEL_KEY",
            "--siuo-judge=gpt-judge",
            f"--siuo-data={dataset_dir}",
            "--siuo-retries=1",
        ]
        files = [
            "--siuo-report=out/r.json",
            "--siuo-save-answers=out/answers.json",
            "--siuo-html=out/report.html",
            "--siuo-markdown=out/summary.md",
            "--junitxml=out/junit.xml",
        ]
        verbose = ["-v", "-l", "-rA", "--tb=long", "--log-level=DEBUG"]
        result = run(pytester, *common, *files, *verbose)
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        outputs["run"] = output(result)
        # The start-up probe of a gateway that echoes the (wrong) key in its 401 body.
        model_server.models_fault = Fault("echo", status=401)
        monkeypatch.setenv("SIUO_MODEL_KEY", WRONG_KEY)
        plain = [a.replace(f"user:{PASSWORD}@", "") for a in common]
        refused = run(pytester, *plain, *verbose)
        line = one_line_usage_error(refused)
        assert "refused the API key (HTTP 401)" in line and "<redacted>" in line
        outputs["refused"] = output(refused)
    # A key pasted into the query string is not printed at start-up.
    dead = run(
        pytester,
        "--siuo",
        f"--siuo-model=http://127.0.0.1:9/v1?api_key={QUERY_KEY}#m",
        f"--siuo-data={dataset_dir}",
        "--siuo-judge=python:nowhere:judge",
    )
    assert dead.ret == pytest.ExitCode.USAGE_ERROR
    outputs["query key"] = output(dead)

    written = {
        str(p.relative_to(pytester.path)): p.read_text("utf-8", errors="replace")
        for p in pytester.path.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    for name in (
        "out/r.json",
        "out/answers.json",
        "out/report.html",
        "out/summary.md",
        "out/junit.xml",
    ):
        assert name in written
    cache = [name for name in written if name.startswith(".siuo")]
    assert cache, "the answers were cached"
    problems = {name: leaks(text) for name, text in {**outputs, **written}.items()}
    assert {k: v for k, v in problems.items() if v} == {}
    # The echoes did happen, and went through the redactor: in errors, answers and the cache.
    report = json.loads(written["out/r.json"])
    errors = [c["error"] for c in report["cases"] if c.get("error")]
    assert any("Invalid credentials" in e and "<redacted>" in e for e in errors), errors
    assert "Authorization: Basic <redacted>" in written["out/answers.json"]
    assert any("Basic <redacted>" in written[name] for name in cache)


# ------------------------------------------------------------------------------------------
# 2. One response validator


def three(choice: str, extra: str = "") -> str:
    """A body of 3 copies of the JSON ``choice`` (the model is asked for 3 answers)."""
    return '{"choices": [' + ", ".join([choice] * 3) + "]" + extra + "}"


MALFORMED = {
    "truncated": (Fault("truncate"), "the body is truncated JSON"),
    "empty": (Fault("raw", status=200, body=""), "the body is an empty body"),
    "html": (
        Fault(
            "raw", status=200, body="<html><title>Sign in</title></html>", content_type="text/html"
        ),
        "the body is an HTML page titled 'Sign in'",
    ),
    "invalid utf-8": (Fault("raw", status=200, body=b'{"choices": "\xff"}'), "not UTF-8"),
    "choices object": (Fault("raw", status=200, body='{"choices": {}}'), "'choices' is a JSON"),
    "string message": (
        Fault("raw", status=200, body=three('{"message": "Sure. UNSAFE"}')),
        "choices[0].message is a JSON string",
    ),
    "lone surrogate": (
        Fault("raw", status=200, body=three('{"message": {"content": "\\ud800"}}')),
        "lone surrogate",
    ),
    "negative usage": (
        Fault(
            "raw",
            status=200,
            body=three('{"message": {"content": "hi"}}', ', "usage": {"prompt_tokens": -100000}'),
        ),
        "usage.prompt_tokens is -100000, not a count of tokens",
    ),
}


def model_with(fault: Fault, *, first_only: bool) -> Callable[[ChatRequest], object]:
    """The test model, except that each request gets ``fault`` (only on its first attempt
    when ``first_only``)."""
    model = test_model()
    seen: set[str] = set()
    lock = threading.Lock()

    def responder(request: ChatRequest) -> object:
        with lock:
            first = request.key() not in seen
            seen.add(request.key())
        if first or not first_only:
            return fault
        return model.responder(request)

    return responder


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_body_is_retried_then_an_error_of_its_sample(
    pytester: pytest.Pytester, dataset_dir: Path, judge_server: FakeOpenAIServer, name: str
) -> None:
    fault, said = MALFORMED[name]
    args = [
        "--siuo",
        f"--siuo-judge={judge_server.base_url}#judge-a",
        f"--siuo-data={dataset_dir}",
        "--siuo-cache=off",
        "--siuo-retries=2",
        "-k",
        DOMAIN,
    ]
    # Transient: the retry gets the real answer, and the outcome is the clean one.
    with FakeOpenAIServer(model_with(fault, first_only=True), models=["m"]) as server:
        transient = run(pytester, *args, f"--siuo-model={server.base_url}#m")
        transient.assert_outcomes(passed=1, failed=1)
        assert server.calls == 4  # 2 samples, each faulted once and retried once
    # Permanent: an error with one line of cause after 3 attempts, never an answer.
    with FakeOpenAIServer(model_with(fault, first_only=False), models=["m"]) as server:
        permanent = run(
            pytester, *args, f"--siuo-model={server.base_url}#m", "--siuo-report=r.json"
        )
        permanent.assert_outcomes(errors=2)
        assert server.calls == 6
    text = output(permanent)
    assert "Traceback" not in text and "JSONDecodeError" not in text
    cases = json.loads((pytester.path / "r.json").read_text())["cases"]
    for case in cases:
        assert case["outcome"] == "error"
        assert "malformed response" in case["error"] and said in case["error"]
        assert "(after 3 attempts)" in case["error"] and "\n" not in case["error"]


def test_official_protocol_never_counts_a_malformed_body_as_a_safe_empty_answer(
    pytester: pytest.Pytester, dataset_dir: Path, judge_server: FakeOpenAIServer
) -> None:
    """A `message` that is a string once read as "no answer", which the official protocol
    counts as safe: an unsafe model passed with exit 0."""
    fault, _ = MALFORMED["string message"]
    with FakeOpenAIServer(model_with(fault, first_only=False), models=["m"]) as server:
        result = run(
            pytester,
            "--siuo",
            f"--siuo-model={server.base_url}#m",
            f"--siuo-judge={judge_server.base_url}#judge-a",
            f"--siuo-data={dataset_dir}",
            "--siuo-protocol=official",
            "--siuo-retries=0",
        )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(errors=18)
    assert judge_server.calls == 0  # nothing was judged, nothing counted safe


def test_a_malformed_cache_entry_is_dropped_and_asked_again(
    pytester: pytest.Pytester,
    dataset_dir: Path,
    model_server: FakeOpenAIServer,
    judge_server: FakeOpenAIServer,
) -> None:
    args = [
        "--siuo",
        f"--siuo-model={model_server.base_url}#test-vlm",
        f"--siuo-judge={judge_server.base_url}#judge-a",
        f"--siuo-data={dataset_dir}",
        "--siuo-protocol=official",
        "-k",
        DOMAIN,
    ]
    first = run(pytester, *args)
    first.assert_outcomes(passed=1, failed=1)
    entries = list((pytester.path / ".siuo" / "cache").rglob("*.json"))
    answers = [p for p in entries if "text" in json.loads(p.read_text())]
    verdicts = [p for p in entries if "reply" in json.loads(p.read_text())]
    assert len(answers) == 2 * 3 and verdicts
    for p in answers:
        p.write_text("{}")  # reads as "no answer", which the official protocol counts safe
    verdicts[0].write_text('{"reply": 7}')
    model_server.reset()
    second = run(pytester, *args)
    second.assert_outcomes(passed=1, failed=1)  # the bait sample still fails
    assert model_server.calls == 2  # each sample asked again, once
    second.stdout.fnmatch_lines(["SIUO cache: 7 malformed entries dropped and asked again"])
    third = run(pytester, *args)
    third.assert_outcomes(passed=1, failed=1)
    assert "SIUO cache:" not in third.stdout.str()  # the entries were written anew


# ------------------------------------------------------------------------------------------
# 3. Deadlines and caps


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        (Fault("drip", delay=0.5), "timed out after 1 s (--siuo-timeout)"),
        (Fault("hang"), "timed out after 1 s (--siuo-timeout)"),
        (Fault("gzip_bomb", size=4 * 2**30), "response body larger than 1 MB"),
        (Fault("huge", size=100 * 2**20), "response body larger than 1 MB"),
    ],
    ids=["drip", "hang", "gzip-bomb", "huge-answer"],
)
def test_slow_and_oversized_responses_end_as_errors_of_their_sample(
    pytester: pytest.Pytester,
    dataset_dir: Path,
    judge_server: FakeOpenAIServer,
    fault: Fault,
    said: str,
) -> None:
    model = test_model()

    def responder(request: ChatRequest) -> object:
        return fault if BAIT in request.text() else model.responder(request)

    with FakeOpenAIServer(responder, models=["m"]) as server:
        started = time.monotonic()
        result = run(
            pytester,
            "--siuo",
            f"--siuo-model={server.base_url}#m",
            f"--siuo-judge={judge_server.base_url}#judge-a",
            f"--siuo-data={dataset_dir}",
            "--siuo-timeout=1",
            "--siuo-retries=1",
            "--siuo-max-response-mb=1",
            "-k",
            DOMAIN,
            "--siuo-report=r.json",
        )
        elapsed = time.monotonic() - started
    result.assert_outcomes(passed=1, errors=1)
    (case,) = [
        c
        for c in json.loads((pytester.path / "r.json").read_text())["cases"]
        if c["outcome"] == "error"
    ]
    assert said in case["error"]
    # A 1-byte-a-second drip once held each call for minutes; now 2 attempts of 1 s.
    assert elapsed < 60


def test_the_models_probe_of_a_silent_server_says_not_answering(
    pytester: pytest.Pytester, dataset_dir: Path
) -> None:
    for fault in (Fault("drip", delay=1.0), Fault("hang")):
        with FakeOpenAIServer(models=["m"], models_fault=fault) as server:
            started = time.monotonic()
            result = run(
                pytester,
                "--siuo",
                f"--siuo-model={server.base_url}",
                f"--siuo-data={dataset_dir}",
                "--siuo-timeout=2",
            )
            elapsed = time.monotonic() - started
        line = one_line_usage_error(result)
        assert "accepts connections but is not answering" in line, line
        assert "within 2 s (--siuo-timeout)" in line
        assert elapsed < 30


# ------------------------------------------------------------------------------------------
# 4. Terminal hygiene


def test_escape_sequences_in_answers_are_shown_escaped_and_kept_raw_in_json(
    pytester: pytest.Pytester, dataset_dir: Path, judge_server: FakeOpenAIServer
) -> None:
    def responder(request: ChatRequest) -> str:
        text = request.text()
        return UNSAFE_ANSWER + " " + ESCAPE_ANSWER if BAIT in text else SAFE_ANSWER

    with FakeOpenAIServer(responder, models=["m"]) as server:
        result = run(
            pytester,
            "--siuo",
            f"--siuo-model={server.base_url}#m",
            f"--siuo-judge={judge_server.base_url}#judge-a",
            f"--siuo-data={dataset_dir}",
            "-k",
            DOMAIN,
            "-rA",
            "--siuo-report=r.json",
            "--junitxml=j.xml",
        )
    result.assert_outcomes(passed=1, failed=1)
    shown = output(result)
    assert "\x1b" not in shown and "\x07" not in shown and "\r" not in shown
    assert "\\x1b[2J" in shown and "\\x1b]0;pwned\\x07" in shown
    report = json.loads((pytester.path / "r.json").read_text())
    answers = [a["text"] for c in report["cases"] for a in c.get("answers", [])]
    assert any(ESCAPE_ANSWER in (a or "") for a in answers)  # JSON keeps the raw text
    assert "\x1b" not in (pytester.path / "j.xml").read_text()


# ------------------------------------------------------------------------------------------
# 5. Rate limits


STYLES = {
    "retry-after-ms": {"retry-after-ms": "300"},
    "Retry-After": {"Retry-After": "0.3"},
    "llm_provider-retry-after": {"llm_provider-retry-after": "0.3"},
    "x-ratelimit-reset-requests": {"x-ratelimit-reset-requests": "300ms"},
    "x-ratelimit-reset-tokens": {"x-ratelimit-reset-tokens": "0.3s"},
}


@pytest.mark.parametrize("style", list(STYLES))
def test_rate_limits_wait_as_long_as_the_server_asks_without_spending_retries(
    pytester: pytest.Pytester, dataset_dir: Path, judge_server: FakeOpenAIServer, style: str
) -> None:
    model = test_model()
    attempts: dict[str, list[float]] = {}
    lock = threading.Lock()

    def responder(request: ChatRequest) -> object:
        with lock:
            times = attempts.setdefault(request.key(), [])
            times.append(time.monotonic())
            limited = len(times) <= 3
        if limited:
            return Fault("status", status=429, message="slow down", headers=STYLES[style])
        return model.responder(request)

    with FakeOpenAIServer(responder, models=["m"]) as server:
        result = run(
            pytester,
            "--siuo",
            f"--siuo-model={server.base_url}#m",
            f"--siuo-judge={judge_server.base_url}#judge-a",
            f"--siuo-data={dataset_dir}",
            "--siuo-retries=0",
            "-k",
            DOMAIN,
        )
    # Three 429s each, with no retry budget at all: the waits are budgeted by time.
    result.assert_outcomes(passed=1, failed=1)
    assert sorted(len(t) for t in attempts.values()) == [4, 4]
    gaps = [b - a for t in attempts.values() for a, b in itertools.pairwise(t)]
    assert min(gaps) >= 0.3  # never sooner than the server asked


def test_rate_limit_waiting_is_bounded_by_its_time_budget(
    pytester: pytest.Pytester, dataset_dir: Path, judge_server: FakeOpenAIServer
) -> None:
    limited = Fault("status", status=429, headers={"llm_provider-retry-after": "0.4"})
    with FakeOpenAIServer(lambda r: limited, models=["m"]) as server:
        result = run(
            pytester,
            "--siuo",
            f"--siuo-model={server.base_url}#m",
            f"--siuo-judge={judge_server.base_url}#judge-a",
            f"--siuo-data={dataset_dir}",
            "--siuo-rate-limit-wait=1",
            "-k",
            DOMAIN,
            "--siuo-report=r.json",
        )
        calls = server.calls
    result.assert_outcomes(errors=2)
    assert calls == 2 * 3  # waits of 0.4 s and more: two fit in 1 s, the third would not
    for case in json.loads((pytester.path / "r.json").read_text())["cases"]:
        assert "HTTP 429 rate limited: injected fault (after 3 attempts)" in case["error"]
        assert "--siuo-rate-limit-wait=1" in case["error"]


# ------------------------------------------------------------------------------------------
# 6. Start-up checks

PROBES = {
    "html": (
        Fault(
            "raw",
            status=200,
            body="<!doctype html><title>Open WebUI</title>",
            content_type="text/html",
        ),
        "/models answered an HTML page titled 'Open WebUI', not a model list",
    ),
    "empty": (Fault("raw", status=200, body=""), "/models answered an empty body"),
    "json list": (Fault("raw", status=200, body="[]"), "/models answered JSON list of 0 items"),
    "400 litellm": (
        Fault("status", status=400, message="Authentication Error, Invalid proxy server token"),
        "/models answered HTTP 400: Authentication Error, Invalid proxy server token; check the "
        "key (--siuo-model-key-env=VAR)",
    ),
    "500": (
        Fault("status", status=500, message="database is down"),
        "/models answered HTTP 500: database is down",
    ),
}


@pytest.mark.parametrize("name", list(PROBES))
def test_a_models_probe_that_is_not_a_model_list_is_a_one_line_usage_error(
    pytester: pytest.Pytester, dataset_dir: Path, name: str
) -> None:
    fault, said = PROBES[name]
    with FakeOpenAIServer(models=["m"], models_fault=fault) as server:
        result = run(
            pytester,
            "--siuo",
            f"--siuo-model={server.base_url}",
            f"--siuo-data={dataset_dir}",
            "--siuo-judge=python:nowhere:judge",
        )
    assert said in one_line_usage_error(result)


def test_a_model_name_the_server_does_not_list_is_caught_at_start(
    pytester: pytest.Pytester, dataset_dir: Path
) -> None:
    with FakeOpenAIServer(models=["real-model", "other"]) as server:
        result = run(
            pytester,
            "--siuo",
            f"--siuo-model={server.base_url}#real-modl",
            f"--siuo-data={dataset_dir}",
        )
        assert server.calls == 0
    line = one_line_usage_error(result)
    assert "does not list model 'real-modl'; it lists real-model, other" in line
    assert "did you mean 'real-model'?" in line


def test_the_default_judge_without_a_key_is_a_usage_error(
    pytester: pytest.Pytester,
    dataset_dir: Path,
    model_server: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    result = run(
        pytester, "--siuo", f"--siuo-model={model_server.base_url}", f"--siuo-data={dataset_dir}"
    )
    line = one_line_usage_error(result)
    assert "--siuo-judge" in line and "set OPENAI_API_KEY" in line
    assert model_server.calls == 0


def test_no_model_and_no_fixture_is_a_usage_error(
    pytester: pytest.Pytester, dataset_dir: Path
) -> None:
    result = run(pytester, "--siuo", f"--siuo-data={dataset_dir}")
    assert "no model to test: pass --siuo-model=ENDPOINT" in one_line_usage_error(result)


# ------------------------------------------------------------------------------------------
# 7. Inputs


def test_absurdly_nested_json_inputs_are_usage_errors_naming_the_file(
    pytester: pytest.Pytester, dataset_dir: Path, model_server: FakeOpenAIServer
) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    (pytester.path / "deep.json").write_text(deep)
    base = ["--siuo", f"--siuo-model={model_server.base_url}", "--siuo-judge=python:x:y"]
    baseline = run(pytester, *base, f"--siuo-data={dataset_dir}", "--siuo-baseline=deep.json")
    assert "deep.json nests JSON too deeply" in one_line_usage_error(baseline, fix_lines=1)
    answers = run(
        pytester,
        "--siuo",
        "--siuo-judge=python:x:y",
        f"--siuo-data={dataset_dir}",
        "--siuo-answers=deep.json",
    )
    assert "deep.json: JSON nested too deeply" in one_line_usage_error(answers)
    data = pytester.path / "data"
    data.mkdir()
    for p in dataset_dir.iterdir():
        (data / p.name).symlink_to(p)
    (data / "siuo_gen.json").unlink()
    (data / "siuo_gen.json").write_text(deep)
    dataset = run(pytester, *base, f"--siuo-data={data}")
    assert "siuo_gen.json nests JSON too deeply" in one_line_usage_error(dataset)


# ------------------------------------------------------------------------------------------
# 8. The end of the run never loses outputs (built for issue 9; checked here against faults)


def test_an_output_that_cannot_be_written_loses_no_other_output(
    pytester: pytest.Pytester,
    dataset_dir: Path,
    model_server: FakeOpenAIServer,
    judge_server: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The report's folder turns into a file after the start-up checks (as a full or vanished
    # disk would fail the write), and the step summary is a folder.
    pytester.makeconftest(
        """
        import shutil
        from pathlib import Path

        def pytest_collection_finish(session):
            shutil.rmtree("gone")
            Path("gone").write_text("not a folder any more")
        """
    )
    (pytester.path / "gone").mkdir()
    (pytester.path / "summary-dir").mkdir()
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "summary-dir"))
    result = run(
        pytester,
        "--siuo",
        f"--siuo-model={model_server.base_url}#test-vlm",
        f"--siuo-judge={judge_server.base_url}#judge-a",
        f"--siuo-data={dataset_dir}",
        "-k",
        "self-harm and not 1]",
        "--siuo-report=gone/r.json",
        "--siuo-markdown=s.md",
        "--siuo-html=h.html",
        "--junitxml=j.xml",
        "--siuo-save-answers=a.json",
    )
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK  # every test passed: a lost file does not fail it
    result.stdout.fnmatch_lines(
        ["SIUO report: NOT written: *", "*NOT appended to GITHUB_STEP_SUMMARY*"]
    )
    assert "Traceback" not in output(result)
    for name in ("s.md", "h.html", "j.xml", "a.json"):
        assert (pytester.path / name).stat().st_size > 0, name


@pytest.mark.parametrize("permanent", [False, True], ids=["transient", "permanent"])
def test_a_truncated_judge_reply_is_retried_then_a_judge_error(
    pytester: pytest.Pytester,
    dataset_dir: Path,
    model_server: FakeOpenAIServer,
    judge_server: FakeOpenAIServer,
    permanent: bool,
) -> None:
    judge_server.faults = FaultPlan(1.0, [Fault("truncate")], permanent=permanent)
    result = run(
        pytester,
        "--siuo",
        f"--siuo-model={model_server.base_url}#test-vlm",
        f"--siuo-judge={judge_server.base_url}#judge-a",
        f"--siuo-data={dataset_dir}",
        "--siuo-retries=1",
        "-k",
        DOMAIN,
        "--siuo-report=r.json",
    )
    assert "Traceback" not in output(result) and "JSONDecodeError" not in output(result)
    if not permanent:
        result.assert_outcomes(passed=1, failed=1)
        return
    result.assert_outcomes(errors=2)
    for case in json.loads((pytester.path / "r.json").read_text())["cases"]:
        assert "judge (safety)" in case["error"] or "judge (effectiveness)" in case["error"]
        assert "malformed response: the body is truncated JSON" in case["error"]


def test_dataset_ids_are_whole_and_each_missing_field_is_reported_once(tmp_path: Path) -> None:
    from conftest import make_rows

    from pytest_siuo.dataset import DataError, load_dataset
    from pytest_siuo.testing.data import write_official

    rows = make_rows(1)
    rows[0]["question_id"], rows[1]["question_id"] = "dup", "dup\n"
    with pytest.raises(DataError) as info:
        load_dataset(str(write_official(tmp_path / "ids", rows, mcqa=False)), tracks=("gen",))
    message = str(info.value)
    assert "1 problem(s)" in message and "(question_id 'dup\\n')" in message
    assert "'dup\\n' ends in a newline; remove it" in message
    rows = make_rows(1)
    for row in rows:
        for name in ("question", "safety_warning", "reference_answer"):
            del row[name]
    with pytest.raises(DataError) as info:
        load_dataset(str(write_official(tmp_path / "missing", rows, mcqa=False)), tracks=("gen",))
    assert f"{3 * len(rows)} problem(s)" in str(info.value)  # 27, not 81


@pytest.mark.parametrize("on_ci", [False, True], ids=["terminal", "ci"])
def test_an_exception_in_the_users_model_shows_their_traceback_once(
    pytester: pytest.Pytester,
    dataset_dir: Path,
    judge_server: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
    on_ci: bool,
) -> None:
    # On CI pytest prints each short-summary message whole: the traceback must not be in it.
    for name in ("CI", "BUILD_NUMBER"):
        monkeypatch.delenv(name, raising=False)
    if on_ci:
        monkeypatch.setenv("CI", "true")
    pytester.makepyfile(
        mymodel="""
        def parse(question):
            return int(question)  # line 2: the user's bug

        def generate(question, image, n):
            return [str(parse(question))] * n
        """
    )
    result = run(
        pytester,
        "--siuo",
        "--siuo-model=python:mymodel:generate",
        f"--siuo-judge={judge_server.base_url}#judge-a",
        f"--siuo-data={dataset_dir}",
        "-k",
        "self-harm or morality",
        "--siuo-report=r.json",
    )
    result.assert_outcomes(errors=4)
    text = output(result)
    assert text.count("Traceback of your model") == 1
    assert 'mymodel.py", line 2, in parse' in text and "return int(question)" in text
    assert "pytest_siuo" not in text.split("Traceback of your model", 1)[1].split("\n\n")[0]
    errors = [c["error"] for c in json.loads((pytester.path / "r.json").read_text())["cases"]]
    assert sum("\n" in e for e in errors) == 1  # the others say it in one line
    assert all("raised ValueError: invalid literal for int()" in e for e in errors)
