"""Shared fixtures: a generated dataset and loopback chat-completions servers.

Nothing here touches the network or the real SIUO data: the dataset is made up and drawn with
Pillow in a temporary folder, and the model and judge are real HTTP servers on 127.0.0.1 driven by
the real ``openai`` client.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

# In-process pytester runs drop the modules first imported during the run; a library imported
# anew afterwards then mixes two copies of its exception classes (an httpcore error escaped the
# openai client that way). Importing the heavy libraries here keeps one copy for the session.
import datasets  # noqa: F401
import huggingface_hub  # noqa: F401
import openai  # noqa: F401
import PIL.Image  # noqa: F401
import pytest
from browser import Browser, BrowserNotFound, find_chromium

from pytest_siuo.domains import DOMAINS
from pytest_siuo.testing.judges import CannedModel, KeywordJudge
from pytest_siuo.testing.server import FakeOpenAIServer

pytest_plugins = ["pytester"]

#: Questions that contain this cue get an unsafe answer from the test model.
BAIT = "[bait]"
UNSAFE_ANSWER = "Sure, here is exactly how to do it. UNSAFE details follow."
SAFE_ANSWER = "I can't help with that, but please consider the risks shown in the picture."


def make_rows(per_domain: int = 2, bait: set[int] | None = None) -> list[dict[str, object]]:
    """Made-up gen rows: ``per_domain`` per domain; ids in ``bait`` carry the unsafe cue."""
    bait = {1, 12} if bait is None else bait
    rows: list[dict[str, object]] = []
    qid = 0
    for domain in DOMAINS:
        for k in range(per_domain):
            qid += 1
            rows.append(
                {
                    "question_id": qid,
                    "image": f"img-{qid:03d}.png",
                    "question": f"Test question {qid} on {domain}, variant {k}."
                    + (f" {BAIT}" if qid in bait else ""),
                    "category": domain,
                    "safety_warning": f"Made-up warning for test case {qid}.",
                    "reference_answer": "A careful, safe and helpful made-up answer.",
                }
            )
    return rows


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pytest_siuo.testing.data import write_official

    folder = tmp_path_factory.mktemp("siuo-data")
    return write_official(folder, make_rows(), mcqa=False)


def test_model() -> CannedModel:
    return CannedModel({BAIT: [UNSAFE_ANSWER]}, default=SAFE_ANSWER)


test_model.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@pytest.fixture
def model_server() -> Iterator[FakeOpenAIServer]:
    model = test_model()
    with FakeOpenAIServer(model.responder, models=["test-vlm"]) as server:
        server.model = model  # type: ignore[attr-defined]
        yield server


@pytest.fixture
def judge_server() -> Iterator[FakeOpenAIServer]:
    judge = KeywordJudge()
    with FakeOpenAIServer(judge.responder, models=["judge-a", "judge-b"]) as server:
        server.judge = judge  # type: ignore[attr-defined]
        yield server


@pytest.fixture
def siuo_args(
    model_server: FakeOpenAIServer, judge_server: FakeOpenAIServer, dataset_dir: Path
) -> list[str]:
    """The command line of a full offline run against the two loopback servers."""
    return [
        "--siuo",
        f"--siuo-model={model_server.base_url}",
        f"--siuo-judge={judge_server.base_url}#judge-a",
        f"--siuo-data={dataset_dir}",
        "--siuo-retry-backoff=0.01",
    ]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless chromium for the HTML report tests (one per test module)."""
    missing = None
    try:
        executable = find_chromium()
    except BrowserNotFound as exc:
        missing = str(exc)
    if missing is not None:  # a CI without a browser must fail, not pass quietly
        pytest.fail(missing, pytrace=False)
    with Browser(executable) as chromium:
        yield chromium
