"""The parts that face hostile servers, one by one: the redactor, the body validator, the
rate-limit headers, and each fault of the loopback server through the real ``openai`` client.

End-to-end runs of the plugin against the same faults are in test_hostile.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest

from pytest_siuo import redact
from pytest_siuo.endpoints import CallError, OpenAIEndpoint, Prompt, SamplingParams
from pytest_siuo.limiter import retry_after
from pytest_siuo.responses import BodyError, cached_answer, cached_reply, completion, describe
from pytest_siuo.testing.server import ESCAPE_ANSWER, FakeOpenAIServer, Fault, scripted
from pytest_siuo.text import visible

# ------------------------------------------------------------------------------- redactor


def test_scrub_removes_registered_secrets_and_credential_shapes() -> None:
    redact.add_secret("sk-parts-canary-0123456789")
    redact.add_url("http://alice:pw-parts-canary@127.0.0.1:1/v1")
    basic = base64.b64encode(b"alice:pw-parts-canary").decode()
    text = (
        "echo: Authorization: Bearer sk-parts-canary-0123456789; key sk-parts-canary-0123456789"
        f" basic {basic}; password pw-parts-canary; Authorization: Bearer other-token-xyz;"
        " url http://bob:hunter22@host/v1?api_key=QS-SECRET&x=1 Basic Ym9iOmh1bnRlcjIy"
    )
    clean = redact.scrub(text)
    for secret in (
        "sk-parts-canary-0123456789",
        basic,
        "pw-parts-canary",
        "other-token-xyz",
        "hunter22",
        "QS-SECRET",
        "Ym9iOmh1bnRlcjIy",
    ):
        assert secret not in clean, secret
    assert "Bearer <redacted>" in clean and "api_key=<redacted>&x=1" in clean


def test_url_shows_no_password_and_no_query_credentials() -> None:
    shown = redact.url("http://u:p4ss@127.0.0.1:8000/v1?api-key=QS123&model=x#m")
    assert shown == "http://***@127.0.0.1:8000/v1?api-key=<redacted>&model=x#m"
    assert redact.url("http://127.0.0.1:8000/v1#m") == "http://127.0.0.1:8000/v1#m"


def test_prose_is_left_alone() -> None:
    prose = (
        "Here are some basic steps; a token of thanks; bearer bonds; the author: Jane; "
        "see https://example.com/a?page=2 for more."
    )
    assert redact.scrub(prose) == prose


def test_short_values_are_not_treated_as_secrets() -> None:
    redact.add_secret("ab")  # would otherwise eat every "ab" of every answer
    assert redact.scrub("about abc") == "about abc"


# ------------------------------------------------------------------------------- validator


def body(**fields: object) -> bytes:
    base: dict[str, object] = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
    base.update(fields)
    return json.dumps(base).encode()


MALFORMED = {
    "empty": (b"", "an empty body"),
    "truncated": (body()[:30], "truncated JSON"),
    "html": (b"<!DOCTYPE html><html><title>Open WebUI</title>", "an HTML page titled 'Open WebUI'"),
    "invalid utf-8": (b'{"choices": "\xff"}', "not UTF-8"),
    "a list": (b"[1, 2]", "JSON list"),
    "choices object": (body(choices={"0": {}}), "'choices' is a JSON object"),
    "no choices": (body(choices=None), "'choices' is missing"),
    "wrong count": (body(choices=[]), "0 choices, expected 1"),
    "string message": (body(choices=[{"message": "hi"}]), "message is a JSON string"),
    "content list": (body(choices=[{"message": {"content": [1]}}]), "content is a JSON list"),
    "lone surrogate": (
        b'{"choices": [{"message": {"content": "ok \\ud800"}}]}',
        "lone surrogate",
    ),
    "negative usage": (body(usage={"prompt_tokens": -5}), "usage.prompt_tokens is -5"),
    "float usage": (body(usage={"completion_tokens": 1.5}), "usage.completion_tokens is 1.5"),
    "usage string": (body(usage="many"), "'usage' is a JSON string"),
    "deep nesting": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_every_malformed_body_is_a_one_line_body_error(name: str) -> None:
    raw, said = MALFORMED[name]
    with pytest.raises(BodyError) as info:
        completion(raw, 1)
    message = str(info.value)
    assert said in message and "\n" not in message


def test_a_good_body_gives_its_choices_and_usage() -> None:
    choices, usage = completion(body(), 1)
    assert [c.text for c in choices] == ["hi"]
    assert (usage.prompt_tokens, usage.completion_tokens) == (3, 1)
    # A null content is a real empty answer, not a fault.
    empty, _ = completion(body(choices=[{"message": {"content": None}}], usage=None), 1)
    assert empty[0].text is None


def test_describe_names_what_came_back() -> None:
    assert describe(b"  ") == "an empty body"
    assert describe(b'{"a": 1}') == "JSON object with keys {a}"
    assert describe(b"\x1b[2Jhello").startswith("text that is not JSON: '\\\\x1b[2Jhello'")


@pytest.mark.parametrize(
    "entry",
    [
        {},
        {"text": 5},
        {"finish_reason": "stop"},
        [],
        "x",
        {"text": "a", "finish_reason": 3},
        {"text": "\ud800"},
        {"text": "a", "finish_reason": "error"},
    ],
)
def test_a_cache_entry_of_the_wrong_shape_is_never_an_answer(entry: object) -> None:
    assert cached_answer(entry) is None


def test_good_cache_entries_are_read() -> None:
    choice = cached_answer({"text": "", "finish_reason": "stop"})
    assert choice is not None and choice.text == ""
    assert cached_reply({"reply": '{"verdict": "safe"}'}) == '{"verdict": "safe"}'
    assert cached_reply({"reply": ""}) is None and cached_reply({}) is None


def test_visible_escapes_what_a_terminal_would_obey() -> None:
    shown = visible(ESCAPE_ANSWER)
    assert "\x1b" not in shown and "\x07" not in shown and "\r" not in shown
    assert "\\x1b[2J" in shown and "I can't help with that." in shown
    assert visible("line 1\nline 2\tend") == "line 1\nline 2\tend"


# ------------------------------------------------------------------------------- rate limits


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"llm_provider-retry-after": "60"}, 60.0),
        ({"x-ratelimit-reset-requests": "6m0s"}, 360.0),
        ({"x-ratelimit-reset-tokens": "120ms"}, 0.12),
        ({"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "1m30s"}, 90.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT"}, 30.0),
        ({"x-ratelimit-reset-requests": "1445412510"}, 30.0),  # a Unix time, 30 s on
        ({"x-ratelimit-reset-requests": "1445412000"}, 0.0),  # a Unix time, past
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "-3"}, None),
        ({}, None),
    ],
)
def test_retry_after_reads_every_header_style(
    headers: dict[str, str], seconds: float | None
) -> None:
    now = 1445412480.0  # 2015-10-21 07:28:00 UTC
    got = retry_after(headers, now=now)
    assert got == (pytest.approx(seconds) if seconds is not None else None)


# ------------------------------------------------------------------------------- faults


def ask(server: FakeOpenAIServer, *, timeout: float = 5.0, mb: float = 8.0) -> object:
    """One call through the real client: the answer text, or the CallError."""
    ep = OpenAIEndpoint(
        base_url=server.base_url,
        model="demo-model",
        api_key="sk-fault-canary-abcdef",
        timeout=timeout,
        max_response_bytes=int(mb * 2**20),
    )

    async def go() -> object:
        try:
            return (await ep.complete(Prompt("hi"), 1, SamplingParams()))[0].text
        except CallError as exc:
            return exc
        finally:
            await ep.aclose()

    return asyncio.run(go())


FAULTS = {
    "echo 401": (Fault("echo", status=401), "HTTP 401: Invalid credentials", False),
    "echo 500": (Fault("echo", status=500), "HTTP 500: Invalid credentials", True),
    "truncate": (Fault("truncate"), "malformed response: the body is truncated JSON", True),
    "html": (
        Fault(
            "raw", status=200, body="<html><title>Login</title></html>", content_type="text/html"
        ),
        "malformed response: the body is an HTML page titled 'Login'",
        True,
    ),
    "string message": (
        Fault("raw", status=200, body='{"choices": [{"message": "hi"}]}'),
        "choices[0].message is a JSON string",
        True,
    ),
    "bad gzip": (
        Fault("raw", status=200, body=b"not gzip", headers={"Content-Encoding": "gzip"}),
        "malformed response: invalid gzip body",
        True,
    ),
    "gzip bomb": (Fault("gzip_bomb", size=2 * 2**30), "larger than 1 MB", False),
    "huge answer": (Fault("huge", size=20 * 2**20), "larger than 1 MB", False),
    "drip": (Fault("drip", delay=0.3), "timed out after 1 s (--siuo-timeout)", True),
    "hang after headers": (Fault("hang"), "timed out after 1 s (--siuo-timeout)", True),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_each_fault_is_a_call_error_with_a_one_line_cause(name: str) -> None:
    fault, said, retryable = FAULTS[name]
    with FakeOpenAIServer(scripted(fault)) as server:
        started = time.monotonic()
        got = ask(server, timeout=1.0, mb=1.0)
        elapsed = time.monotonic() - started
    assert isinstance(got, CallError), got
    assert said in str(got) and "\n" not in str(got)
    assert got.retryable is retryable
    assert "sk-fault-canary-abcdef" not in str(got)
    # The deadline is for the whole call: a drip of a 400-byte body at 0.3 s a byte would
    # otherwise take two minutes. (Loose bound: it only has to be far below that.)
    assert elapsed < 30


def test_an_echoed_key_in_an_answer_is_redacted() -> None:
    with FakeOpenAIServer(scripted(Fault("echo", status=200))) as server:
        got = ask(server)
    assert isinstance(got, str) and "Bearer <redacted>" in got
    assert "sk-fault-canary-abcdef" not in got


@pytest.mark.parametrize("ratio_mb", [64, 1024])
def test_the_gzip_bomb_is_cut_at_the_cap_whatever_its_ratio(ratio_mb: int) -> None:
    with FakeOpenAIServer(scripted(Fault("gzip_bomb", size=ratio_mb * 2**20))) as server:
        got = ask(server, mb=2.0)
    assert isinstance(got, CallError) and "larger than 2 MB" in str(got)


def test_a_body_under_the_cap_is_read_whole_even_gzipped() -> None:
    with FakeOpenAIServer(scripted(Fault("gzip_bomb", size=100_000))) as server:
        got = ask(server, mb=1.0)
    assert got == "A" * 100_000


def test_proxies_from_the_environment_are_guarded_and_no_proxy_is_honoured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    # A "proxy" that accepts connections and never answers: the deadline still ends the call.
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        with FakeOpenAIServer() as server:
            got = ask(server, timeout=1.0)
        assert isinstance(got, CallError) and "timed out after 1 s" in str(got)
        # Loopback listed in NO_PROXY goes direct, past the silent proxy.
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        with FakeOpenAIServer(scripted("direct")) as server:
            assert ask(server, timeout=1.0) == "direct"
    finally:
        silent.close()


def test_a_spent_quota_is_not_waited_for_but_a_rate_limit_is() -> None:
    limited = Fault("status", status=429, message="Rate limit reached for requests")
    spent = Fault(
        "raw",
        status=429,
        body=json.dumps(
            {"error": {"message": "You exceeded your current quota", "code": "insufficient_quota"}}
        ),
    )
    with FakeOpenAIServer(scripted(limited)) as server:
        got = ask(server)
    assert isinstance(got, CallError) and got.rate_limited and got.retryable
    assert "HTTP 429 rate limited: Rate limit reached for requests" in str(got)
    with FakeOpenAIServer(scripted(spent)) as server:
        got = ask(server)
    assert isinstance(got, CallError) and not got.retryable
    assert "HTTP 429 quota exceeded: You exceeded your current quota" in str(got)
