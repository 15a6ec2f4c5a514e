"""Endpoint parameter negotiation with the real openai client against the loopback server.

The server imitates OpenAI's reasoning models (``max_tokens`` and any temperature but 1 are
rejected with OpenAI's 400 ``unsupported_parameter`` / ``unsupported_value`` bodies) and older
servers that know only ``max_tokens`` (``Unrecognized request argument supplied``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_siuo.endpoints import CallError, OpenAIEndpoint, Prompt, SamplingParams
from pytest_siuo.params import ParamPolicy, check_default_judge
from pytest_siuo.settings import DEFAULT_JUDGE
from pytest_siuo.testing.judges import KeywordJudge
from pytest_siuo.testing.server import FakeOpenAIServer


@pytest.mark.parametrize(
    ("base_url", "model", "token_param", "temperature"),
    [
        (None, "gpt-4o-mini", "max_completion_tokens", True),  # OpenAI itself
        ("https://api.openai.com/v1", "gpt-4.1", "max_completion_tokens", True),
        ("https://acme.openai.azure.com/openai/v1", "gpt-4o", "max_completion_tokens", True),
        ("http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-VL-7B-Instruct", "max_tokens", True),  # vLLM
        ("http://localhost:11434/v1", "llava:13b", "max_tokens", True),  # Ollama
        ("http://127.0.0.1:4000", "gpt-5-mini", "max_completion_tokens", False),  # a proxy
        ("http://127.0.0.1:4000", "openai/o4-mini", "max_completion_tokens", False),
        ("http://127.0.0.1:4000", "azure/o3", "max_completion_tokens", False),
        ("http://127.0.0.1:4000", "gpt-5-chat-latest", "max_completion_tokens", True),
        ("http://127.0.0.1:4000", "gpt-4o-mini", "max_tokens", True),
        ("http://127.0.0.1:4000", "ollama/llama3.2-vision", "max_tokens", True),
    ],
)
def test_starting_policy_by_host_and_model_name(
    base_url: str | None, model: str, token_param: str, temperature: bool
) -> None:
    policy = ParamPolicy(base_url=base_url, model=model)
    sent = policy.apply({"max_tokens": 500, "temperature": 0.0, "model": model})
    assert set(sent) == {"model", token_param} | ({"temperature"} if temperature else set())
    assert sent[token_param] == 500


def ask(
    server: FakeOpenAIServer, model: str, temperature: float | None = 0.0
) -> tuple[OpenAIEndpoint, list[str]]:
    ep = OpenAIEndpoint(base_url=server.base_url, model=model, api_key=None)

    async def run() -> list[str]:
        texts = []
        for _ in range(3):
            out = await ep.complete(
                Prompt(text="hello"), 1, SamplingParams(max_tokens=50, temperature=temperature)
            )
            texts += [c.text or "" for c in out]
        await ep.aclose()
        return texts

    return ep, asyncio.run(run())


@pytest.mark.parametrize(
    ("mode", "model", "rejected", "sent", "notes"),
    [
        # A reasoning model behind a name we cannot tell: one 400 each, then adapted.
        (
            "reasoning",
            "my-proxy-alias",
            2,
            {"max_completion_tokens"},
            [
                "the server rejected max_tokens: sent max_completion_tokens instead",
                "the server rejected temperature=0: sent without one from then on, so it ran "
                "unseeded at the model's default",
            ],
        ),
        # Known by its name: asked right at once, no 400 at all.
        (
            "reasoning",
            "gpt-5-mini",
            0,
            {"max_completion_tokens"},
            [
                "gpt-5-mini takes only its default temperature: sent without temperature=0, so it "
                "ran unseeded at its default (1)"
            ],
        ),
        # An older server behind a gpt-5 name (a proxy to a local model): renamed back.
        (
            "max_tokens_only",
            "gpt-5-nano",
            1,
            {"max_tokens"},
            [
                "gpt-5-nano takes only its default temperature: sent without temperature=0, so it "
                "ran unseeded at its default (1)",
                "the server rejected max_completion_tokens: sent max_tokens instead",
            ],
        ),
        ("max_tokens_only", "llava", 0, {"max_tokens", "temperature"}, []),
    ],
    ids=["reasoning-unknown-name", "reasoning-by-name", "max-tokens-only-gpt5", "plain"],
)
def test_adapts_once_per_endpoint_and_remembers(
    mode: str, model: str, rejected: int, sent: set[str], notes: list[str]
) -> None:
    with FakeOpenAIServer(lambda r: "ok", models=[model], params_mode=mode) as server:
        ep, texts = ask(server, model)
        bodies = [r.body for r in server.requests]
    assert texts == ["ok"] * 3
    assert len(bodies) == 3 + rejected
    later = bodies[rejected:]
    assert all(set(b) - {"model", "messages"} == sent for b in later)
    assert ep.params.notes == notes


def bad_request(mode: str, **body: object) -> Exception:
    """The openai client's own exception for what a loopback server in ``mode`` answers."""
    import openai

    with FakeOpenAIServer(models=["m"], params_mode=mode, supports_n=False) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
        try:
            client.post(
                "/chat/completions",
                body={"model": "m", "messages": [{"role": "user", "content": "x"}], **body},
                cast_to=object,
            )
        except openai.BadRequestError as exc:
            return exc
        finally:
            client.close()
    raise AssertionError(f"the {mode} server accepted {body}")


def test_each_parameter_adapts_once_so_rejecting_both_names_is_an_error_not_a_loop() -> None:
    policy = ParamPolicy(base_url="http://127.0.0.1:4000", model="gpt-5")
    first = policy.apply({"max_tokens": 5})
    assert first == {"max_completion_tokens": 5}
    unrecognized = bad_request("max_tokens_only", max_completion_tokens=5)
    assert policy.adapt(first, unrecognized)
    second = policy.apply({"max_tokens": 5})
    assert second == {"max_tokens": 5}
    # A call sent before the change is retried with the new name, without a new note.
    assert policy.adapt(first, unrecognized)
    rejected = bad_request("reasoning", max_tokens=5)
    assert not policy.adapt(second, rejected)
    assert policy.notes == ["the server rejected max_completion_tokens: sent max_tokens instead"]
    # An unrelated 400 is not adapted to.
    assert not policy.adapt(second, bad_request("any", n=2))


def test_a_server_that_rejects_both_names_gives_one_http_400_error() -> None:
    with FakeOpenAIServer(lambda r: "ok", models=["m"], params_mode="max_tokens_only") as server:
        ep = OpenAIEndpoint(base_url=server.base_url, model="alias", api_key=None)
        # Learnt from an earlier answer that max_tokens is refused; this server refuses the
        # other name too.
        assert ep.params.adapt({"max_tokens": 5}, bad_request("reasoning", max_tokens=5))

        async def run() -> None:
            try:
                await ep.complete(Prompt(text="x"), 1, SamplingParams(max_tokens=5))
            finally:
                await ep.aclose()

        with pytest.raises(CallError, match=r"HTTP 400.*max_completion_tokens"):
            asyncio.run(run())
    assert len(server.requests) == 1


def run_args(
    model: FakeOpenAIServer, judge: FakeOpenAIServer, data: Path, judge_name: str
) -> list[str]:
    return [
        "--siuo",
        f"--siuo-model={model.base_url}#gpt-5-mini",
        f"--siuo-judge={judge.base_url}#{judge_name}",
        f"--siuo-data={data}",
        "--siuo-cache=off",
        "--siuo-concurrency=1",
        "--siuo-judge-concurrency=1",
        "--siuo-report=r.json",
        "-p",
        "no:randomly",
    ]


#: What the run says it adapted, per judge name: a known reasoning model, and a name the
#: plugin cannot tell (learnt from two 400s).
JUDGE_NOTES = {
    "o4-mini": [
        "SIUO judge: o4-mini takes only its default temperature: sent without "
        "temperature=0, so it ran unseeded at its default (1)"
    ],
    "judge-alias": [
        "SIUO judge: the server rejected max_tokens: sent max_completion_tokens instead",
        "SIUO judge: the server rejected temperature=0: sent without one from then on, so "
        "it ran unseeded at the model's default",
    ],
}


@contextlib.contextmanager
def _reasoning_servers(
    judge_name: str,
) -> Iterator[tuple[FakeOpenAIServer, FakeOpenAIServer]]:
    """A reasoning model under test (gpt-5-mini) and a reasoning judge named ``judge_name``."""
    with (
        FakeOpenAIServer(
            lambda r: "I can't help with that.", models=["gpt-5-mini"], params_mode="reasoning"
        ) as model,
        FakeOpenAIServer(
            KeywordJudge().responder, models=[judge_name], params_mode="reasoning"
        ) as js,
    ):
        yield model, js


@pytest.mark.parametrize("judge_name", ["o4-mini", "judge-alias"])
def test_a_run_against_reasoning_endpoints_passes_and_says_what_it_adapted(
    pytester: pytest.Pytester, dataset_dir: Path, judge_name: str
) -> None:
    with _reasoning_servers(judge_name) as (model, js):
        result = pytester.runpytest(
            *run_args(model, js, dataset_dir, judge_name), "--siuo-judge-all"
        )
        judge_bodies = [r.body for r in js.requests]
    result.assert_outcomes(passed=18)
    assert not any("max_tokens" in b for b in model.requests[0].body)
    # A name we cannot tell is learnt from two 400s: max_tokens, then temperature.
    rejected = 0 if judge_name == "o4-mini" else 2
    assert len(judge_bodies) == 18 * 3 * 2 + rejected  # cache off: every answer, both kinds
    assert all("temperature" not in b and "max_tokens" not in b for b in judge_bodies[rejected:])
    notes = JUDGE_NOTES[judge_name]
    result.stdout.fnmatch_lines(notes)
    assert result.stdout.str().count("SIUO judge: ") == len(notes)
    assert "SIUO model: " not in result.stdout.str()  # known by its name, nothing to adapt
    settings = json.loads((pytester.path / "r.json").read_text())["settings"]
    assert settings["endpoint_notes"] == notes


def test_what_xdist_workers_adapted_is_said_once_on_the_controller(
    pytester: pytest.Pytester, dataset_dir: Path
) -> None:
    with _reasoning_servers("judge-alias") as (model, js):
        result = pytester.runpytest(*run_args(model, js, dataset_dir, "judge-alias"), "-n", "2")
    result.assert_outcomes(passed=18)
    notes = JUDGE_NOTES["judge-alias"]
    result.stdout.fnmatch_lines(notes)
    # Both workers learnt it; the controller says each note once, here and in the report.
    assert result.stdout.str().count("SIUO judge: ") == len(notes)
    settings = json.loads((pytester.path / "r.json").read_text())["settings"]
    assert settings["endpoint_notes"] == notes


def test_check_default_judge_names_a_listed_alternative() -> None:
    check_default_judge(DEFAULT_JUDGE, [DEFAULT_JUDGE, "x"], where="--siuo-judge", server="S")
    check_default_judge(DEFAULT_JUDGE, [], where="--siuo-judge", server="S")  # unknown: quiet
    with pytest.raises(Exception, match=r"--siuo-judge=gpt-4o-mini, which S lists"):
        check_default_judge(
            DEFAULT_JUDGE, ["gpt-4o-mini", "gpt-5-mini"], where="--siuo-judge", server="S"
        )
    with pytest.raises(Exception, match=r"--siuo-judge=MODEL with a vision model that S lists"):
        check_default_judge(DEFAULT_JUDGE, ["llava"], where="--siuo-judge", server="S")


@pytest.mark.parametrize("listed", [True, False], ids=["listed", "retired"])
def test_default_judge_that_the_server_no_longer_lists_is_one_usage_error(
    pytester: pytest.Pytester, dataset_dir: Path, monkeypatch: pytest.MonkeyPatch, listed: bool
) -> None:
    judge = KeywordJudge()
    names = [DEFAULT_JUDGE, "gpt-4.1-mini"] if listed else ["gpt-4.1-mini", "gpt-5-mini"]
    with (
        FakeOpenAIServer(lambda r: "I can't help with that.", models=["vlm"]) as model,
        FakeOpenAIServer(judge.responder, models=names) as js,
    ):
        monkeypatch.setenv("OPENAI_BASE_URL", js.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-" + "0" * 8)
        result = pytester.runpytest(
            "--siuo",
            f"--siuo-model={model.base_url}",
            f"--siuo-data={dataset_dir}",
            "--siuo-cache=off",
            "--siuo-judge-all",
        )
        chat_calls = len(js.requests)
        url = js.base_url
    if listed:
        result.assert_outcomes(passed=18)
        assert chat_calls == 18 * 3 * 2
        return
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: --siuo-judge: the default judge {DEFAULT_JUDGE} is not served by "
            f"OPENAI_BASE_URL ({url}) (retired, or not available to this key); choose "
            "the judge with --siuo-judge=gpt-4.1-mini, which OPENAI_BASE_URL*lists"
        ]
    )
    assert chat_calls == 0 and "sk-test" not in result.stderr.str()


def test_concurrent_calls_that_all_meet_the_400s_adapt_once_and_all_succeed() -> None:
    import threading

    with FakeOpenAIServer(lambda r: "ok", models=["alias"], params_mode="reasoning") as server:
        ep = OpenAIEndpoint(base_url=server.base_url, model="alias", api_key=None)
        texts: list[str] = []

        async def run() -> None:
            params = SamplingParams(max_tokens=5, temperature=0.7)
            outs = await asyncio.gather(
                *(ep.complete(Prompt(text=f"q{i}"), 1, params) for i in range(16))
            )
            texts.extend(c.text or "" for out in outs for c in out)
            await ep.aclose()

        # In a thread, so that a deadlock fails this test instead of hanging the suite.
        worker = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
        worker.start()
        worker.join(60)
        assert not worker.is_alive(), "the calls never finished"
    assert texts == ["ok"] * 16
    assert ep.params.notes == [
        "the server rejected max_tokens: sent max_completion_tokens instead",
        "the server rejected temperature=0.7: sent without one from then on, so it ran "
        "unseeded at the model's default",
    ]
