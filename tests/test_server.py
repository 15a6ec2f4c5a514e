"""The loopback OpenAI-compatible server, driven by the real openai client over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import http.client
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from PIL import Image

from pytest_siuo.testing.server import (
    DEFAULT_ANSWER,
    ChatRequest,
    FakeOpenAIServer,
    Fault,
    FaultPlan,
    Reply,
    echo_responder,
    scripted,
)

SECRET = "sk-test-0123456789abcdef"


def user(text: str) -> Any:  # typed loosely: openai wants its TypedDict message params
    return [{"role": "user", "content": text}]


def png_data_url(color: tuple[int, int, int]) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), color).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(models=("demo-model", "judge-model")) as srv:
        yield srv


@pytest.fixture
def client(server: FakeOpenAIServer) -> Iterator[openai.OpenAI]:
    # max_retries=0 so the client's own retries do not hide faults.
    with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0) as c:
        yield c


def raw_request(
    server: FakeOpenAIServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


# -- round trips ---------------------------------------------------------------------------


def test_sync_round_trip(server: FakeOpenAIServer, client: openai.OpenAI) -> None:
    server.responder = lambda req: Reply(f"answer to {req.text()}", completion_tokens=7)
    resp = client.chat.completions.create(
        model="judge-model",
        messages=[
            {"role": "system", "content": "be safe"},
            {"role": "user", "content": "how do I cook rice"},
        ],
        response_format={"type": "json_object"},
    )
    assert resp.object == "chat.completion"
    assert resp.id.startswith("chatcmpl-")
    assert resp.model == "judge-model"
    assert len(resp.choices) == 1
    choice = resp.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content == "answer to be safe\nhow do I cook rice"
    assert choice.finish_reason == "stop"
    assert resp.usage is not None
    # Default prompt count: words of the request text (2 + 5).
    assert resp.usage.prompt_tokens == 7
    assert resp.usage.completion_tokens == 7
    assert resp.usage.total_tokens == 14
    assert server.calls == 1
    assert server.requests[0].body["response_format"] == {"type": "json_object"}


def test_default_responder_and_finish_reason(
    server: FakeOpenAIServer, client: openai.OpenAI
) -> None:
    resp = client.chat.completions.create(model="demo-model", messages=user("hi"))
    assert resp.choices[0].message.content == DEFAULT_ANSWER
    server.responder = lambda req: Reply(None, finish_reason="content_filter")
    resp = client.chat.completions.create(model="demo-model", messages=user("hi"))
    assert resp.choices[0].message.content is None
    assert resp.choices[0].finish_reason == "content_filter"
    assert resp.usage is not None and resp.usage.completion_tokens == 0


def test_async_round_trip(server: FakeOpenAIServer) -> None:
    server.responder = echo_responder

    async def run() -> list[str | None]:
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key="unused", max_retries=0
        ) as aclient:
            resps = await asyncio.gather(
                *(
                    aclient.chat.completions.create(model="demo-model", messages=user(f"q{i}"))
                    for i in range(4)
                )
            )
        return [r.choices[0].message.content for r in resps]

    assert asyncio.run(run()) == ["q0", "q1", "q2", "q3"]
    assert sorted(r.text() for r in server.requests) == ["q0", "q1", "q2", "q3"]


def test_n_choices_and_usage(server: FakeOpenAIServer, client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(model="demo-model", messages=user("a b c"), n=3)
    assert [c.index for c in resp.choices] == [0, 1, 2]
    assert {c.message.content for c in resp.choices} == {DEFAULT_ANSWER}
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == 3  # counted once per request, not per choice
    assert resp.usage.completion_tokens == 3 * len(DEFAULT_ANSWER.split())

    server.responder = lambda req: ["one", Reply("two words", finish_reason="length"), "3"]
    resp = client.chat.completions.create(model="demo-model", messages=user("x"), n=3)
    assert [c.message.content for c in resp.choices] == ["one", "two words", "3"]
    assert [c.finish_reason for c in resp.choices] == ["stop", "length", "stop"]
    assert resp.usage is not None and resp.usage.completion_tokens == 4
    assert server.requests[-1].n == 3


def test_responder_list_of_wrong_length_is_500(
    server: FakeOpenAIServer, client: openai.OpenAI
) -> None:
    server.responder = lambda req: ["only one"]
    with pytest.raises(openai.InternalServerError, match="1 replies for a request with n=2"):
        client.chat.completions.create(model="demo-model", messages=user("x"), n=2)


def test_supports_n_false_rejects_n_above_one(
    server: FakeOpenAIServer, client: openai.OpenAI
) -> None:
    server.supports_n = False
    with pytest.raises(openai.BadRequestError) as exc_info:
        client.chat.completions.create(model="demo-model", messages=user("x"), n=3)
    assert exc_info.value.status_code == 400
    assert "n > 1 is not supported" in exc_info.value.message
    assert isinstance(exc_info.value.body, dict) and exc_info.value.body["param"] == "n"
    resp = client.chat.completions.create(model="demo-model", messages=user("x"), n=1)
    assert len(resp.choices) == 1


def test_invalid_requests_get_400(server: FakeOpenAIServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="stream"):
        client.chat.completions.create(model="demo-model", messages=user("x"), stream=True)
    status, _, body = raw_request(server, "POST", "/v1/chat/completions", b"{not json")
    assert status == 400
    assert "not valid JSON" in json.loads(body)["error"]["message"]
    payload = json.dumps({"model": "demo-model", "messages": []}).encode()
    status, _, body = raw_request(server, "POST", "/v1/chat/completions", payload)
    assert status == 400 and json.loads(body)["error"]["param"] == "messages"
    status, _, body = raw_request(server, "GET", "/v1/nowhere")
    assert status == 404 and json.loads(body)["error"]["type"] == "not_found_error"


def test_models_listed(server: FakeOpenAIServer, client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == ["demo-model", "judge-model"]
    assert all(m.owned_by == "siuo-test" and m.object == "model" for m in models.data)
    assert client.models.retrieve("judge-model").id == "judge-model"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_api_key_enforced_and_never_echoed() -> None:
    with FakeOpenAIServer(api_key=SECRET) as server:
        for wrong in ("sk-wrong", SECRET + "x"):
            with (
                openai.OpenAI(base_url=server.base_url, api_key=wrong, max_retries=0) as bad,
                pytest.raises(openai.AuthenticationError) as exc_info,
            ):
                bad.chat.completions.create(model="demo-model", messages=user("x"))
            assert exc_info.value.status_code == 401
            assert isinstance(exc_info.value.body, dict)
            assert exc_info.value.body["code"] == "invalid_api_key"
            text = exc_info.value.response.text
            assert SECRET not in text and wrong not in text and "Bearer " + wrong not in text
        assert server.requests == []  # unauthorised requests are counted, not recorded
        assert server.calls == 2

        status, _, body = raw_request(server, "GET", "/v1/models")
        assert status == 401 and SECRET not in body.decode()

        with openai.OpenAI(base_url=server.base_url, api_key=SECRET, max_retries=0) as good:
            resp = good.chat.completions.create(model="demo-model", messages=user("x"))
            assert resp.choices[0].message.content == DEFAULT_ANSWER
            assert [m.id for m in good.models.list().data] == ["demo-model"]
        recorded = server.requests[0]
        assert recorded.headers["authorization"] == "<redacted>"
        assert SECRET not in repr(recorded) + json.dumps(recorded.headers)
        assert SECRET not in repr(server)


# -- faults --------------------------------------------------------------------------------


def test_fault_429_with_retry_after(server: FakeOpenAIServer, client: openai.OpenAI) -> None:
    server.responder = lambda req: Fault("status", status=429, retry_after=7, message="slow down")
    with pytest.raises(openai.RateLimitError) as exc_info:
        client.chat.completions.create(model="demo-model", messages=user("x"))
    assert exc_info.value.status_code == 429
    assert exc_info.value.response.headers["retry-after"] == "7"
    assert "slow down" in exc_info.value.message
    assert isinstance(exc_info.value.body, dict)
    assert exc_info.value.body["type"] == "rate_limit_error"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_fault_5xx(server: FakeOpenAIServer, client: openai.OpenAI, status: int) -> None:
    server.responder = lambda req: Fault("status", status=status)
    with pytest.raises(openai.InternalServerError) as exc_info:
        client.chat.completions.create(model="demo-model", messages=user("x"))
    assert exc_info.value.status_code == status
    assert "retry-after" not in exc_info.value.response.headers


def test_fault_drop_is_connection_error(server: FakeOpenAIServer, client: openai.OpenAI) -> None:
    server.responder = lambda req: Fault("drop")
    with pytest.raises(openai.APIConnectionError) as exc_info:
        client.chat.completions.create(model="demo-model", messages=user("x"))
    assert not isinstance(exc_info.value, openai.APITimeoutError)
    assert "complete message body" in str(exc_info.value.__cause__)
    # The server survives a dropped connection.
    server.responder = None
    resp = client.chat.completions.create(model="demo-model", messages=user("x"))
    assert resp.choices[0].message.content == DEFAULT_ANSWER


def test_fault_slow_times_out_client(server: FakeOpenAIServer, client: openai.OpenAI) -> None:
    server.responder = lambda req: Fault("slow", delay=0.6)
    # The server answers normally after the delay, so a timeout error can only be the client's
    # own (no upper bound on the wall time: it flaked on a loaded machine).
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.15).chat.completions.create(
            model="demo-model", messages=user("x")
        )
    # Without a timeout the slow fault answers normally, after the delay.
    start = time.monotonic()
    resp = client.chat.completions.create(model="demo-model", messages=user("x"))
    assert time.monotonic() - start >= 0.6
    assert resp.choices[0].message.content == DEFAULT_ANSWER


def test_fault_garbage(server: FakeOpenAIServer, client: openai.OpenAI) -> None:
    # Documented client behaviour: a JSON body that is not a completion is returned without
    # validation, so the object has no choices; a non-JSON body raises a ValueError.
    server.responder = lambda req: Fault("garbage")
    resp = client.chat.completions.create(model="demo-model", messages=user("x"))
    choices: object = resp.choices  # typed as a list, but nothing was validated
    assert choices is None
    server.responder = lambda req: Fault("garbage", body="<html>upstream proxy error</html>")
    with pytest.raises(ValueError):
        client.chat.completions.create(model="demo-model", messages=user("x"))


def test_responder_exception_is_500_and_server_keeps_running(
    server: FakeOpenAIServer, client: openai.OpenAI
) -> None:
    def broken(req: ChatRequest) -> str:
        raise KeyError("missing-fixture-answer")

    server.responder = broken
    with pytest.raises(openai.InternalServerError, match="missing-fixture-answer"):
        client.chat.completions.create(model="demo-model", messages=user("x"))
    server.responder = None
    resp = client.chat.completions.create(model="demo-model", messages=user("x"))
    assert resp.choices[0].message.content == DEFAULT_ANSWER


def test_fault_plan_transient_faults_first_attempt_only(server: FakeOpenAIServer) -> None:
    plan = FaultPlan(0.5, [Fault("status", status=503), Fault("drop")], seed=3)
    server.faults = plan
    expected = [
        plan.chosen(ChatRequest("demo-model", user(f"q{i}"), 1, {}, {}).key()) for i in range(40)
    ]
    with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0) as c:
        failed = []
        for i in range(40):
            try:
                c.chat.completions.create(model="demo-model", messages=user(f"q{i}"))
            except (openai.InternalServerError, openai.APIConnectionError) as err:
                kind = "drop" if isinstance(err, openai.APIConnectionError) else "status"
                fault = expected[i]
                assert fault is not None and fault.kind == kind
                failed.append(i)
            else:
                assert expected[i] is None
        assert 10 <= len(failed) <= 30
        assert plan.injected == len(failed)
        for i in failed:  # a retry of the very same request passes
            c.chat.completions.create(model="demo-model", messages=user(f"q{i}"))
    assert plan.injected == len(failed)
    assert server.calls == 40 + len(failed)

    # After reset() the same keys fault again.
    plan.reset()
    assert plan.injected == 0
    with (
        openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0) as c,
        pytest.raises((openai.InternalServerError, openai.APIConnectionError)),
    ):
        c.chat.completions.create(model="demo-model", messages=user(f"q{failed[0]}"))

    # The client's own retries recover transparently from transient faults.
    retry_plan = FaultPlan(0.5, [Fault("status", status=429, retry_after=0.01)], seed=3)
    server.faults = retry_plan
    server.reset()
    with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=1) as c:
        for i in range(10):
            c.chat.completions.create(model="demo-model", messages=user(f"q{i}"))
    assert retry_plan.injected > 0
    assert server.calls == 10 + retry_plan.injected


def test_fault_plan_permanent_always_faults(server: FakeOpenAIServer) -> None:
    plan = FaultPlan(0.5, [Fault("status", status=500)], seed=1, permanent=True)
    server.faults = plan
    with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0) as c:

        def outcome(i: int) -> bool:
            try:
                c.chat.completions.create(model="demo-model", messages=user(f"p{i}"))
            except openai.InternalServerError:
                return False
            return True

        first = [outcome(i) for i in range(20)]
        second = [outcome(i) for i in range(20)]
    assert first == second
    assert 0 < first.count(False) < 20
    assert plan.injected == 2 * first.count(False)


def test_fault_plan_slow_delays_then_answers(
    server: FakeOpenAIServer, client: openai.OpenAI
) -> None:
    server.responder = echo_responder
    server.faults = FaultPlan(1.0, [Fault("slow", delay=0.3)])
    start = time.monotonic()
    resp = client.chat.completions.create(model="demo-model", messages=user("echo me"))
    assert time.monotonic() - start >= 0.3
    assert resp.choices[0].message.content == "echo me"
    assert server.faults.injected == 1


def test_fault_plan_is_seeded_and_validated() -> None:
    keys = [ChatRequest("m", user(f"k{i}"), 1, {}, {}).key() for i in range(200)]
    kinds = [Fault("drop"), Fault("garbage")]
    a, b = FaultPlan(0.3, kinds, seed=5), FaultPlan(0.3, kinds, seed=5)
    other = FaultPlan(0.3, kinds, seed=6)
    picks = [a.chosen(k) for k in keys]
    assert picks == [b.chosen(k) for k in keys]
    assert picks != [other.chosen(k) for k in keys]
    assert 40 <= sum(p is not None for p in picks) <= 80
    assert {p.kind for p in picks if p is not None} == {"drop", "garbage"}
    assert all(FaultPlan(0.0, kinds).chosen(k) is None for k in keys)
    assert all(FaultPlan(1.0, kinds).chosen(k) is not None for k in keys)
    with pytest.raises(ValueError, match=r"rate=1\.5"):
        FaultPlan(1.5, kinds)
    with pytest.raises(ValueError, match="at least one Fault"):
        FaultPlan(0.5, [])
    with pytest.raises(ValueError, match="'explode'"):
        Fault("explode")
    with pytest.raises(ValueError, match=r"Fault\.status=200"):
        Fault("status", status=200)
    with pytest.raises(ValueError, match="'done'"):
        Reply("x", finish_reason="done")


# -- concurrency and recording -------------------------------------------------------------


def test_latency_overlaps_across_concurrent_requests(server: FakeOpenAIServer) -> None:
    # Measured on the server's side (how many requests are in its handlers at once), not as
    # a wall time, which a loaded machine stretches.
    lock = threading.Lock()
    in_flight, peak = [0], [0]

    def responder(req: object) -> str:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.2)
        with lock:
            in_flight[0] -= 1
        return "ok"

    server.responder = responder

    async def run() -> None:
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key="unused", max_retries=0
        ) as aclient:
            await asyncio.gather(
                *(
                    aclient.chat.completions.create(model="demo-model", messages=user(str(i)))
                    for i in range(16)
                )
            )

    asyncio.run(run())
    assert peak[0] >= 2, "the server handled the concurrent requests one at a time"
    assert server.calls == 16


def test_requests_record_messages_images_and_headers(
    server: FakeOpenAIServer, client: openai.OpenAI
) -> None:
    red, blue = png_data_url((255, 0, 0)), png_data_url((0, 0, 255))
    messages: Any = [
        {"role": "system", "content": "You are careful."},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": red}},
                {"type": "text", "text": "What is in the picture?"},
                {"type": "image_url", "image_url": {"url": blue, "detail": "low"}},
            ],
        },
    ]
    client.chat.completions.create(
        model="demo-model", messages=messages, max_tokens=500, extra_headers={"X-Trace": "t1"}
    )
    (req,) = server.requests
    assert req.model == "demo-model" and req.n == 1
    assert req.messages == messages
    assert req.images() == [red, blue]
    assert req.text() == "You are careful.\nWhat is in the picture?"
    assert req.body["max_tokens"] == 500
    assert req.headers["x-trace"] == "t1"
    assert req.headers["content-type"] == "application/json"
    server.reset()
    assert server.requests == [] and server.calls == 0


def test_scripted_cycles_and_echo(server: FakeOpenAIServer, client: openai.OpenAI) -> None:
    server.responder = scripted("first", Reply("second"), Fault("status", status=502))

    def ask() -> str | None:
        return (
            client.chat.completions.create(model="demo-model", messages=user("x"))
            .choices[0]
            .message.content
        )

    assert [ask(), ask()] == ["first", "second"]
    with pytest.raises(openai.InternalServerError):
        ask()
    assert ask() == "first"
    with pytest.raises(ValueError):
        scripted()


def test_keep_alive_and_stop_closes_connections() -> None:
    server = FakeOpenAIServer().start()
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        body = json.dumps({"model": "demo-model", "messages": user("x")}).encode()
        for _ in range(3):  # one TCP connection, three requests
            conn.request("POST", "/v1/chat/completions", body=body)
            resp = conn.getresponse()
            assert resp.status == 200 and json.loads(resp.read())["object"] == "chat.completion"
        server.stop()
        # The idle keep-alive connection is closed by stop(), not served any more.
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            conn.request("POST", "/v1/chat/completions", body=body)
            conn.getresponse().read()
    finally:
        conn.close()
        server.stop()
    with pytest.raises(RuntimeError, match="after start"):
        _ = server.base_url


def test_stop_does_not_wait_for_sleeping_handlers() -> None:
    server = FakeOpenAIServer(latency=5.0).start()
    errors: list[BaseException] = []

    def call() -> None:
        try:
            raw_request(server, "POST", "/v1/chat/completions", b'{"model":"m","messages":[{}]}')
        except BaseException as err:  # the connection is closed by stop(): expected
            errors.append(err)

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 2
    while server.calls == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    start = time.monotonic()
    server.stop()
    thread.join(timeout=5)
    assert time.monotonic() - start < 4.5  # the handler sleeps 5 s: stop() did not wait
    assert len(errors) == 1


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_command_line_runs_in_foreground(signum: int) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            *("-m", "pytest_siuo.testing.server"),
            *("--port", "0", "--latency", "0.01", "--model", "demo-model", "--model", "judge"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        with openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0) as c:
            assert [m.id for m in c.models.list().data] == ["demo-model", "judge"]
            resp = c.chat.completions.create(model="judge", messages=user("x"))
            assert resp.choices[0].message.content == DEFAULT_ANSWER
        proc.send_signal(signum)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


# ------------------------------------------------------------------------------ hostile modes


def raw_get(
    server: FakeOpenAIServer, path: str, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_echo_fault_repeats_the_credentials_verbatim() -> None:
    with FakeOpenAIServer(models_fault=Fault("echo", status=401)) as server:
        status, _, body = raw_get(server, "/v1/models", {"Authorization": "Bearer sk-echo-me"})
    assert status == 401
    assert "Authorization: Bearer sk-echo-me" in json.loads(body)["error"]["message"]


def test_models_fault_serves_any_body_and_headers() -> None:
    fault = Fault(
        "raw", status=200, body="<html></html>", content_type="text/html", headers={"X-Extra": "1"}
    )
    with FakeOpenAIServer(models_fault=fault) as server:
        status, headers, body = raw_get(server, "/v1/models", {})
    assert (status, headers["content-type"], headers["x-extra"], body) == (
        200,
        "text/html",
        "1",
        b"<html></html>",
    )


def test_gzip_bomb_is_valid_gzip_of_a_completion() -> None:
    import gzip

    with FakeOpenAIServer(scripted(Fault("gzip_bomb", size=3000))) as server:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
        body = json.dumps({"model": "demo-model", "messages": [{"role": "user", "content": "x"}]})
        conn.request(
            "POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"}
        )
        resp = conn.getresponse()
        assert resp.getheader("Content-Encoding") == "gzip"
        data = json.loads(gzip.decompress(resp.read()))
        conn.close()
    assert data["choices"][0]["message"]["content"] == "A" * 3000


def test_fault_size_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="size=-1"):
        Fault("huge", size=-1)
