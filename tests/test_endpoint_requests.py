"""What an OpenAI-compatible endpoint sends: the body with the sample's image encoded once,
the headers the openai client would send, and a start-up probe that needs no openai import.

The faults a hostile server can throw at the same client are in test_hostile_parts.py and
test_hostile.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from pytest_siuo import endpoints
from pytest_siuo.endpoints import OpenAIEndpoint, Prompt, SamplingParams, image_part
from pytest_siuo.evaluator import SampleImage
from pytest_siuo.images import ImageRef
from pytest_siuo.testing.data import png_bytes
from pytest_siuo.testing.server import ChatRequest, FakeOpenAIServer


class CountingRef:
    """An ImageRef stand-in that counts its reads."""

    def __init__(self, data: bytes) -> None:
        self._ref = ImageRef.from_bytes_loader("s.png", lambda: data, where="test row")
        self.name = "s.png"
        self.reads = 0

    def read_bytes(self) -> bytes:
        self.reads += 1
        return self._ref.read_bytes()

    @property
    def sha256(self) -> str:
        return self._ref.sha256

    @property
    def mime(self) -> str:
        return self._ref.mime


def test_the_sample_image_goes_out_as_its_data_url_encoded_once() -> None:
    data = png_bytes("once")
    ref = ImageRef.from_bytes_loader("once.png", lambda: data, where="test row")
    counting = CountingRef(data)
    image = SampleImage(counting)
    seen: list[ChatRequest] = []

    def responder(request: ChatRequest) -> list[str]:
        seen.append(request)
        return ["fine"] * request.n

    async def calls() -> None:
        ep = OpenAIEndpoint(base_url=server.base_url, model="demo-model", api_key=None)
        try:
            for text in ("first", "second", "third"):
                prompt = Prompt(text=text, image=image, system="be careful")
                await ep.complete(prompt, 2, SamplingParams(max_tokens=7))
        finally:
            await ep.aclose()

    with FakeOpenAIServer(responder) as server:
        asyncio.run(calls())
    assert len(seen) == 3 and counting.reads == 1
    for request, text in zip(seen, ("first", "second", "third"), strict=True):
        assert request.images() == [ref.data_url()]
        assert request.messages == [
            {"role": "system", "content": "be careful"},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": ref.data_url()}},
                    {"type": "text", "text": text},
                ],
            },
        ]
        assert request.body["n"] == 2 and request.body["max_tokens"] == 7
    assert image_part(image) is image_part(image)  # one encoding per sample image


def test_a_text_that_spells_the_image_slot_stays_text() -> None:
    # The slot is random per process; even a prompt that contains it is encoded correctly.
    data = png_bytes("slot")
    ref = ImageRef.from_bytes_loader("slot.png", lambda: data, where="test row")
    slot = endpoints._IMAGE_SLOT
    kwargs = {
        "model": "m",
        "messages": [{"role": "user", "content": [slot, {"type": "text", "text": slot}]}],
    }
    body = json.loads(endpoints._body(kwargs, ref))
    content = body["messages"][0]["content"]
    assert content == [
        {"type": "image_url", "image_url": {"url": ref.data_url()}},
        {"type": "text", "text": slot},
    ]


def test_headers_are_those_of_the_openai_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_ORG_ID", "org-test")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-test")
    seen: list[ChatRequest] = []

    def responder(request: ChatRequest) -> str:
        seen.append(request)
        return "fine"

    async def call() -> None:
        ep = OpenAIEndpoint(base_url=server.base_url, model="demo-model", api_key="sk-hdr-1234")
        try:
            await ep.complete(Prompt(text="hi"), 1, SamplingParams())
        finally:
            await ep.aclose()

    with FakeOpenAIServer(responder, api_key="sk-hdr-1234") as server:
        asyncio.run(call())
    (request,) = seen
    headers = request.headers
    assert headers["authorization"] == "<redacted>"  # it was sent (the server checked it)
    assert headers["openai-organization"] == "org-test"
    assert headers["openai-project"] == "proj-test"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("pytest-siuo/")
    assert "n" not in request.body and "image_url" not in json.dumps(request.body)


def test_the_start_up_probe_does_not_import_openai() -> None:
    code = (
        "import sys\n"
        "from pytest_siuo.endpoints import list_models\n"
        "print(list_models(sys.argv[1], None), 'openai' in sys.modules)\n"
    )
    with FakeOpenAIServer(models=["m-one", "m-two"]) as server:
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        out = subprocess.run(
            [sys.executable, "-c", code, server.base_url],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            timeout=60,
        ).stdout
    assert out.strip() == "['m-one', 'm-two'] False"
