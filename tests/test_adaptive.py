"""Adaptive judging: fewer judge calls, the very same verdicts.

The proof is exhaustive: for N = 1..4 answers per sample, every sequence of answer kinds (four
judge grades, an empty answer, a content-filter stop and a reply the judge cannot grade), under
both protocols, goes through the real Evaluator twice, judging adaptively and judging every
answer; the sample's verdicts (safe, effective, safe-and-effective, outcome) must be equal.
N = 5 is checked on every multiset of kinds in a fixed order and a seeded sample of orders.
Then the plugin: the same figures with and without --siuo-judge-all, the calls saved in the
summary and the reports, and every baseline run judging every answer.
"""

from __future__ import annotations

import io
import itertools
import json
import random
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pytest_siuo.dataset import Sample
from pytest_siuo.endpoints import Completion, Prompt, PythonEndpoint, SamplingParams
from pytest_siuo.evaluator import EvalConfig, Evaluator
from pytest_siuo.images import ImageRef
from pytest_siuo.results import Answer, SampleResult, decided_without
from pytest_siuo.testing.judges import KeywordJudge
from pytest_siuo.testing.server import FakeOpenAIServer

# Answer kinds: what the model says, and so what the keyword judge grades.
KINDS = {
    "safe-effective": "Here is a careful and helpful answer, variant {i}.",
    "safe-refusal": "I can't help with that, variant {i}.",
    "unsafe-effective": "Sure, UNSAFE steps follow, variant {i}.",
    "unsafe-refusal": "I can't say more, but UNSAFE, variant {i}.",
    "garbled": "GARBLE variant {i}",  # the judge's reply cannot be read: a judge error
    "empty": "",
    "filtered": None,  # the provider's content filter stopped it
}


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), "white").save(out, format="PNG")
    return out.getvalue()


PNG = _png()


class ScriptedModel:
    """An inline endpoint answering each question with the kinds its question names."""

    id = "scripted-model"
    cacheable = False
    max_concurrency = None
    inline = True

    def __init__(self, scripts: dict[str, Sequence[str]]) -> None:
        self.scripts = scripts

    async def complete(self, prompt: Prompt, n: int, params: SamplingParams) -> list[Completion]:
        kinds = self.scripts[prompt.text]
        assert len(kinds) == n
        out = []
        for i, kind in enumerate(kinds):
            template = KINDS[kind]
            if template is None:
                out.append(Completion(text="partial", finish_reason="content_filter"))
            else:
                out.append(Completion(text=template.format(i=i)))
        return out

    async def aclose(self) -> None:
        pass


def _evaluate(
    combos: list[tuple[str, ...]], n: int, *, adaptive: bool, official: bool
) -> tuple[list[SampleResult], int, int]:
    """Results of one sample per combo, and (judge calls made, judge calls not needed)."""
    scripts = {f"Question {k}?": combo for k, combo in enumerate(combos)}
    judge = KeywordJudge(garble=["GARBLE"])
    ev = Evaluator(
        ScriptedModel(scripts),
        PythonEndpoint(judge),
        config=EvalConfig(samples=n, adaptive=adaptive, empty_is_safe=official, retries=0),
    )
    image = ImageRef.from_bytes_loader("x.png", lambda: PNG, where="test")
    try:
        results = [
            ev.result(
                "gen",
                Sample(
                    question_id=str(k),
                    domain="self-harm",
                    question=question,
                    image=image,
                    safety_warning="w",
                    reference_answer="r",
                ),
            )
            for k, question in enumerate(scripts)
        ]
    finally:
        ev.close()
    return results, judge.calls, ev.stats["judge"].not_needed


def _verdicts(r: SampleResult) -> tuple[Any, ...]:
    case = r.to_case()
    return case.outcome, case.safe, case.effective, case.safe_effective


def _check(combos: list[tuple[str, ...]], n: int, official: bool) -> tuple[int, int]:
    every, calls_all, skipped_all = _evaluate(combos, n, adaptive=False, official=official)
    fewer, calls_adaptive, _ = _evaluate(combos, n, adaptive=True, official=official)
    assert skipped_all == 0
    for combo, a, b in zip(combos, every, fewer, strict=True):
        assert _verdicts(a) == _verdicts(b), combo
        # The cause of a sample without verdict may list fewer judge errors, never none.
        assert bool(a.error_message) == bool(b.error_message), combo
    return calls_all, calls_adaptive


@pytest.mark.parametrize("official", [False, True], ids=["strict", "official"])
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_every_sequence_of_answers_gets_the_same_verdicts(n: int, official: bool) -> None:
    combos = list(itertools.product(KINDS, repeat=n))
    calls_all, calls_adaptive = _check(combos, n, official)
    assert calls_adaptive <= calls_all
    if n >= 3:
        assert calls_adaptive < calls_all  # it saves calls once there is a majority to decide


@pytest.mark.parametrize("official", [False, True], ids=["strict", "official"])
def test_five_answers_every_multiset_and_seeded_orders(official: bool) -> None:
    multisets = list(itertools.combinations_with_replacement(KINDS, 5))
    rng = random.Random(20261202)
    shuffled = []
    for m in multisets:
        order = list(m)
        rng.shuffle(order)
        shuffled.append(tuple(order))
    calls_all, calls_adaptive = _check(multisets + shuffled, 5, official)
    assert calls_adaptive < calls_all


def test_unanimous_answers_skip_what_cannot_matter() -> None:
    combos = [("safe-effective",) * 3, ("unsafe-effective",) * 3, ("safe-refusal",) * 5]
    for combo in combos:
        results, calls, skipped = _evaluate([combo], len(combo), adaptive=True, official=False)
        (r,) = results
        judged = len(combo) // 2 + 1
        assert calls == 2 * judged  # safety and effectiveness of the first majority
        assert skipped == 2 * (len(combo) - judged)
        assert [a.not_needed for a in r.answers] == [False] * judged + [True] * (
            len(combo) - judged
        )
        record = r.to_case()
        assert record.votes.not_needed == len(combo) - judged
        assert all(("not_needed" in a) == (i >= judged) for i, a in enumerate(record.answers))


def test_a_split_first_majority_asks_the_rest() -> None:
    results, calls, skipped = _evaluate(
        [("safe-effective", "unsafe-effective", "safe-effective")], 3, adaptive=True, official=False
    )
    assert (calls, skipped) == (6, 0)
    assert results[0].outcome == "safe"


def test_decided_without_tries_every_grade() -> None:
    r = SampleResult(
        case_id="c", track="gen", question_id="1", domain="self-harm", question="q", n=3
    )
    r.answers = [
        Answer(0, "a", safe=True, effective=True),
        Answer(1, "b", safe=True, effective=False),
        Answer(2, "c"),
    ]
    # Safe is decided (2 of 3), effective and safe-and-effective hang on the third answer.
    assert not decided_without(r, [r.answers[2]])
    assert decided_without(r, [r.answers[2]], effectiveness=False) is False  # effective unknown
    r.answers[1] = Answer(1, "b", safe=True, effective=True)
    assert decided_without(r, [r.answers[2]])
    assert decided_without(r, [])


# ------------------------------------------------------------------------------ the plugin


@pytest.fixture
def servers() -> Iterator[tuple[FakeOpenAIServer, FakeOpenAIServer]]:
    variants = [
        "A careful, safe and helpful made-up answer about the question.",
        "Another careful and helpful made-up answer about the question.",
        "Sure: UNSAFE made-up steps.",
    ]

    def model(request: Any) -> list[str]:
        # Decided by the question (so both runs get the same answers): some samples answer
        # 3-0, some split 2-1; every answer differs, so no two judge prompts are the same.
        k = int(re.search(r"question (\d+)", request.text()).group(1))
        return [f"{variants[(k + i * (k % 3)) % 3]} ({i})" for i in range(request.n)]

    with (
        FakeOpenAIServer(model, models=["m"]) as m,
        FakeOpenAIServer(KeywordJudge().responder, models=["judge"]) as j,
    ):
        yield m, j


def _args(servers: tuple[FakeOpenAIServer, FakeOpenAIServer], data: Path) -> list[str]:
    m, j = servers
    return [
        "--siuo",
        f"--siuo-model={m.base_url}",
        f"--siuo-judge={j.base_url}",
        f"--siuo-data={data}",
        "--siuo-retry-backoff=0.01",
        "-p",
        "no:randomly",
    ]


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    cases = {
        c["case_id"]: (c["outcome"], c["safe"], c["effective"], c["safe_effective"])
        for c in report["cases"]
    }
    return {"cases": cases, "summary": report["summary"], "passed": report["passed"]}


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["no-xdist", "xdist-2"])
def test_adaptive_and_judge_all_runs_report_the_same_figures(
    pytester: pytest.Pytester,
    servers: tuple[FakeOpenAIServer, FakeOpenAIServer],
    dataset_dir: Path,
    xdist: list[str],
) -> None:
    args = [*_args(servers, dataset_dir), "--siuo-threshold=0.5", *xdist]
    args.append("--siuo-cache=off")
    pytester.runpytest_subprocess(*args, "--siuo-report=all.json", "--siuo-judge-all")
    judge = servers[1]
    before = judge.calls
    adaptive = pytester.runpytest_subprocess(
        *args, "--siuo-report=adaptive.json", "--siuo-html=r.html"
    )
    every = json.loads((pytester.path / "all.json").read_text())
    fewer = json.loads((pytester.path / "adaptive.json").read_text())
    assert _figures(fewer) == _figures(every)
    assert adaptive.ret == pytest.ExitCode.OK
    made = judge.calls - before
    saved = fewer["usage"]["judge"]["not_needed"]
    assert saved > 0 and made + saved == every["usage"]["judge"]["calls"]
    adaptive.stdout.fnmatch_lines([f"*; {saved} judge calls not needed (the verdicts were*"])
    skipped = sum(1 for c in fewer["cases"] for a in c["answers"] if a.get("not_needed"))
    assert skipped == saved // 2  # two calls (safety, effectiveness) per unjudged answer
    assert fewer["settings"]["judge_all"] is False and every["settings"]["judge_all"] is True
    html = (pytester.path / "r.html").read_text()
    assert html.count('data-verdict="not_needed"') == skipped
    assert f"{skipped} answers were not judged ({saved} judge calls saved)" in html


def test_a_baseline_run_judges_every_answer(
    pytester: pytest.Pytester,
    servers: tuple[FakeOpenAIServer, FakeOpenAIServer],
    dataset_dir: Path,
) -> None:
    result = pytester.runpytest_subprocess(
        *_args(servers, dataset_dir), "--siuo-save-baseline=b.json"
    )
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    saved = json.loads((pytester.path / "b.json").read_text())
    assert all(not a.get("not_needed") for c in saved["cases"] for a in c["answers"])
    assert saved["usage"]["judge"]["not_needed"] == 0
    assert "not needed" not in result.stdout.str()


def test_a_baseline_from_an_adaptive_report_is_compared_sample_by_sample() -> None:
    from pytest_siuo.baseline import Baseline, compare
    from pytest_siuo.tally import Tally

    def case(qid: int, safe: int, unsafe: int, not_needed: int) -> dict[str, Any]:
        outcome = "safe" if safe > unsafe else "unsafe"
        return {
            "case_id": f"self-harm-{qid}",
            "track": "gen",
            "question_id": str(qid),
            "domain": "self-harm",
            "outcome": outcome,
            "safe": outcome == "safe",
            "votes": {
                "safe": safe,
                "unsafe": unsafe,
                "no_answer": 0,
                "error": 0,
                **({"not_needed": not_needed} if not_needed else {}),
            },
            "n": 3,
        }

    # Ten samples: safe 2-0 (+1 not needed) in the baseline, unsafe 1-2 now.
    base = Baseline.from_records([case(q, 2, 0, 1) for q in range(10)])
    now = Tally()
    for q in range(10):
        now.add(case(q, 1, 2, 0))
    d = compare(now, base).domain("self-harm")
    assert d is not None
    # One answer per side and sample (their majorities): 10 answers each way.
    assert (d.baseline_answers, d.run_answers) == (10, 10)
    assert d.p_value == pytest.approx(0.5**10)
    comparison = compare(now, base)
    assert comparison.by_majority == 10
    assert any(
        "10 sample(s) of baseline were judged adaptively" in w for w in comparison.warnings()
    )
