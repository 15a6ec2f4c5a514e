"""The MCQA track end to end: lettered prompts, parsed choices, shuffling, no judge."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pytest_siuo.testing.server import ChatRequest, FakeOpenAIServer


def _options(prompt: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-D])\. (.*)$", prompt, re.MULTILINE))


@pytest.fixture
def mcqa_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pytest_siuo.testing.data import gen_rows, write_official

    folder = tmp_path_factory.mktemp("mcqa")
    write_official(folder, gen_rows(1), mcqa=True)
    return folder


def load_rows(folder: Path) -> list[dict[str, object]]:
    return json.loads((folder / "siuo_mcqa.json").read_text())


def test_mcqa_track_needs_no_judge(pytester: pytest.Pytester, mcqa_dir: Path) -> None:
    rows = load_rows(mcqa_dir)
    safe = {str(r["question_id"]): r["options"][r["correct_option"]] for r in rows}
    first = rows[0]

    def responder(request: ChatRequest) -> str:
        options = _options(request.text())
        if first["question"] in request.text():
            return "A or B, hard to say."  # ambiguous: never guessed
        for letter, text in options.items():
            if text in safe.values():
                return f"**{letter}**"
        return "no idea"

    with FakeOpenAIServer(responder, models=["vlm"]) as server:
        result = pytester.runpytest(
            "--siuo",
            f"--siuo-model={server.base_url}",
            f"--siuo-data={mcqa_dir}",
            "--siuo-track=mcqa",
            "-v",
            "--siuo-report=r.json",
        )
        calls = server.calls
    result.assert_outcomes(passed=8, failed=1)
    assert calls == 9
    result.stdout.fnmatch_lines(
        [
            "*siuo::mcqa?self-harm-1? FAILED*",
            "*SIUO MCQA NO ANSWER: self-harm-1*0 of 1 presentations picked the safe option*",
            "*unparsed answer*",
            "*SIUO safety summary (multiple choice)*",
        ]
    )
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["summary"]["mcqa"]["overall"]["safe"] == 8
    assert report["summary"]["mcqa"]["overall"]["no_answer"] == 1


def test_shuffle_all_asks_every_rotation(pytester: pytest.Pytester, mcqa_dir: Path) -> None:
    rows = load_rows(mcqa_dir)
    safe_texts = {r["options"][r["correct_option"]] for r in rows}

    def always_a(request: ChatRequest) -> str:
        return "A"

    def picks_safe(request: ChatRequest) -> str:
        for letter, text in _options(request.text()).items():
            if text in safe_texts:
                return letter
        return "?"

    with FakeOpenAIServer(always_a, models=["vlm"]) as server:
        biased = pytester.runpytest(
            "--siuo",
            f"--siuo-model={server.base_url}",
            f"--siuo-data={mcqa_dir}",
            "--siuo-track=mcqa",
            "--siuo-mcqa-shuffle=all",
            "--siuo-cache=off",
        )
        assert server.calls == 9 * 4
        server.responder = picks_safe
        fair = pytester.runpytest(
            "--siuo",
            f"--siuo-model={server.base_url}",
            f"--siuo-data={mcqa_dir}",
            "--siuo-track=mcqa",
            "--siuo-mcqa-shuffle=all",
            "--siuo-cache=off",
        )
    # A model that always says "A" is right in one rotation of four: never passes under "all".
    biased.assert_outcomes(failed=9)
    fair.assert_outcomes(passed=9)


def test_both_tracks(pytester: pytest.Pytester, mcqa_dir: Path) -> None:
    from pytest_siuo.testing.judges import KeywordJudge

    judge = KeywordJudge()
    with (
        FakeOpenAIServer(lambda r: "B", models=["vlm"]) as model,
        FakeOpenAIServer(judge.responder, models=["j"]) as js,
    ):
        result = pytester.runpytest(
            "--siuo",
            f"--siuo-model={model.base_url}",
            f"--siuo-judge={js.base_url}",
            f"--siuo-data={mcqa_dir}",
            "--siuo-track=both",
            "--siuo-mcqa-shuffle=7",
            "-q",
        )
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 18
    result.stdout.fnmatch_lines(["*SIUO safety summary =*", "*SIUO safety summary (multiple*"])


def test_html_cards_show_the_options_with_the_chosen_one_marked(
    pytester: pytest.Pytester, mcqa_dir: Path
) -> None:
    rows = load_rows(mcqa_dir)
    unsafe = {
        str(r["question_id"]): r["options"]["A" if r["correct_option"] != "A" else "B"]
        for r in rows
    }

    def responder(request: ChatRequest) -> str:
        # Always the same unsafe option, whatever letter it is shown under.
        options = _options(request.text())
        return next(f"{k}" for k, v in options.items() if v in unsafe.values())

    with FakeOpenAIServer(responder, models=["vlm"]) as server:
        result = pytester.runpytest(
            "--siuo",
            f"--siuo-model={server.base_url}",
            f"--siuo-data={mcqa_dir}",
            "--siuo-track=mcqa",
            "--siuo-mcqa-shuffle=all",
            "--siuo-report=r.json",
            "--siuo-html=r.html",
        )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    report = json.loads((pytester.path / "r.json").read_text())
    case = report["cases"][0]
    row = next(r for r in rows if str(r["question_id"]) == case["question_id"])
    assert case["options"] == row["options"] and case["safe_option"] == row["correct_option"]
    picked = next(k for k, v in row["options"].items() if v in unsafe.values())
    assert [a["choice"] for a in case["answers"]] == [picked] * 4  # every rotation, same text
    html = (pytester.path / "r.html").read_text()
    card = html.split(f'id="case-mcqa-{case["case_id"]}"', 1)[1].split("</article>", 1)[0]
    assert f'<li class="option chosen" data-letter="{picked}">' in card
    assert "(chosen ×4)" in card
    assert f'<li class="option safe" data-letter="{row["correct_option"]}">' in card
    assert "(the safe option)" in card
    assert "<b>Choice:</b> chose" in card and "Judge:" not in card
