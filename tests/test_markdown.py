"""The Markdown job summary: verdict line, per-domain table, regressions, escaping."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_siuo.baseline import Baseline
from pytest_siuo.decision import RunResult, Selection, decide
from pytest_siuo.domains import slug
from pytest_siuo.gate import Thresholds
from pytest_siuo.markdown import cell, render_markdown
from pytest_siuo.stats import wilson_interval
from pytest_siuo.tally import Tally

SETTINGS = {
    "model_id": "openai:http://127.0.0.1:9/v1#tiny",
    "judge": "gpt-4o-mini",
    "dataset": {"source": "sinwang/SIUO", "revision": "024e80a01795376b9fed", "layout": "hub"},
    "samples": 3,
    "protocol": "strict",
}


def record(
    domain: str, qid: int, outcome: str, *, answer: str = "I can't help with that."
) -> dict[str, Any]:
    error = outcome == "error"
    safe = None if error else outcome == "safe"
    return {
        "case_id": f"{slug(domain)}-{qid}",
        "track": "gen",
        "question_id": str(qid),
        "domain": domain,
        "question": f"How do I do thing {qid}?",
        "outcome": outcome,
        "safe": safe,
        "effective": None if error else True,
        "safe_effective": safe,
        "answers": [
            {
                "index": 0,
                "text": "A harmless first answer.",
                "safety": {"safe": True, "reason": ""},
            },
            {"index": 1, "text": answer, "safety": {"safe": bool(safe), "reason": "judge"}},
        ],
    }


def tally_of(rows: list[dict[str, Any]]) -> Tally:
    tally = Tally()
    for row in rows:
        tally.add(row)
    return tally


def run_of(tally: Tally, **gating: Any) -> RunResult:
    """The run's decision, as the plugin makes it (thresholds, baseline, interval options)."""
    return decide(tally, selection=Selection(tracks=("gen",)), **gating)


def table_rows(text: str) -> dict[str, list[str]]:
    """Table rows keyed by their first cell (escaped pipes do not split cells)."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| Domain"):
            cells = [c.strip() for c in line.strip("|").replace("\\|", "\x00").split("|")]
            rows[cells[0]] = [c.replace("\x00", "\\|") for c in cells]
    return rows


def test_cell_escapes_pipes_newlines_markdown_and_html() -> None:
    assert cell("a | b\nc\r\n  d") == "a \\| b c d"
    assert cell("<script>alert(1)</script>") == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert cell("[click](http://x) **bold** `code` # h ~~s~~") == (
        "\\[click\\](http://x) \\*\\*bold\\*\\* \\`code\\` \\# h \\~\\~s\\~\\~"
    )
    assert cell("x" * 50, 10) == "x" * 9 + "…"


def test_no_gate_shows_the_rates_and_says_so() -> None:
    tally = tally_of([record("self-harm", i, "safe" if i < 3 else "unsafe") for i in range(4)])
    text = render_markdown(run_of(tally), tally, title="Model X", settings=SETTINGS)
    lines = text.splitlines()
    assert lines[0] == "## Model X"
    assert lines[2].startswith("❌ **No SIUO gate set**") and "75.0%" in lines[2]
    assert "1 sample(s) are not safe" in lines[2]
    assert "model `openai:http://127.0.0.1:9/v1#tiny`" in text
    assert "data `sinwang/SIUO` @ `024e80a01795`" in text
    row = table_rows(text)["self-harm"]
    low, high = wilson_interval(3, 4)
    assert row[1:5] == ["4", "75.0", f"{low * 100:.1f}–{high * 100:.1f}", "–"]
    assert row[-1] == "–"


def test_failing_gate_and_regressions() -> None:
    base_rows = [record("self-harm", i, "safe") for i in range(10)]
    base_rows += [record("morality", 100 + i, "unsafe" if i < 2 else "safe") for i in range(10)]
    current_rows = [
        record(
            "self-harm",
            i,
            "unsafe" if i < 6 else "safe",
            answer="Sure | step 1:\nbuy <b>rope</b> " + "and more " * 40,
        )
        for i in range(10)
    ]
    current_rows += [record("morality", 100 + i, "safe") for i in range(9)]  # 109 missing
    current_rows.append(record("morality", 200, "error"))
    tally = tally_of(current_rows)
    run = run_of(
        tally,
        thresholds=Thresholds(default=0.5, per_domain={"morality": 0.9}),
        baseline=Baseline.from_records(base_rows, source="release.json"),
        max_errors=1,
    )
    text = render_markdown(run, tally, title="SIUO", settings={})

    verdict = text.splitlines()[2]
    assert verdict.startswith("❌ **SIUO gate failed**")
    assert "domain 'self-harm' safe rate 40.0% is below its threshold" in verdict
    assert "SIUO baseline: domain 'self-harm' regressed" in verdict
    failed = text.split("#### Failed gate cases")[1]
    assert "`siuo::gate[gen-self-harm]`" in failed
    assert "`siuo::gate[gen-baseline-self-harm]`" in failed
    assert "gen-morality" not in failed and "errors" not in failed  # 1 error, allowed

    rows = table_rows(text)
    harm, morality, overall = rows["self-harm"], rows["morality"], rows["**overall**"]
    assert harm[1:3] == ["10", "40.0"]
    assert harm[4] == "-60.0 (p=0.016)"  # 6 regressions, 0 improvements: p = 1/64
    assert harm[7] == "safe ≥ 50%"
    assert "❌ safe below threshold" in harm[8] and "❌ fail (regressed)" in harm[8]
    assert morality[1] == "10" and morality[6] == "1"  # 10 samples, 1 error
    assert morality[4] == "+22.2"  # 2 improvements on 9 paired samples, no regression
    assert morality[8] == "✅ pass"
    assert overall[7] == "–"

    assert "### Against the baseline (release.json)" in text
    assert "6 regression(s), 2 improvement(s), 0 known unsafe, 0 new, 1 missing" in text
    regressions = text.split("#### Regressions")[1]
    assert regressions.count("\n- `self-harm-") == 6
    first = regressions.split("\n- ")[1]
    assert "(self-harm, now unsafe): How do I do thing 0?" in first
    # The unsafe answer, not the harmless first one, shortened and escaped.
    assert "answer: “Sure \\| step 1: buy &lt;b&gt;rope&lt;/b&gt; and more" in first
    assert "A harmless" not in first and "…”" in first and len(first) < 400
    assert "<b>" not in text and "<script" not in text
    assert "`morality-109`" in text.split("Missing baseline cases")[1]


def test_passing_gate_with_inconclusive_and_improvement() -> None:
    base_rows = [record("morality", i, "unsafe" if i < 6 else "safe") for i in range(17)]
    tally = tally_of([record("morality", i, "safe" if i < 15 else "unsafe") for i in range(17)])
    run = run_of(
        tally,
        thresholds=Thresholds(default=0.8),
        threshold_on="interval",
        baseline=Baseline.from_records(base_rows),
    )
    text = render_markdown(run, tally, title="t", settings=None)
    verdict = text.splitlines()[2]
    assert verdict.startswith("✅ **SIUO gate passed**")
    assert "1 inconclusive (counted as pass)" in verdict
    row = table_rows(text)["morality"]
    assert "⚠️ safe inconclusive" in row[8]
    assert "> SIUO gate: domain 'morality' safe rate" in text


@pytest.mark.parametrize("strict", [False, True])
def test_inconclusive_that_fails_is_a_failure(strict: bool) -> None:
    tally = tally_of([record("morality", i, "safe" if i < 15 else "unsafe") for i in range(17)])
    run = run_of(
        tally,
        thresholds=Thresholds(default=0.8),
        threshold_on="interval",
        inconclusive="fail" if strict else "pass",
    )
    text = render_markdown(run, tally, title="t")
    assert text.splitlines()[2].startswith("❌" if strict else "✅")
    assert ("❌ safe inconclusive" in text) is strict


def test_title_and_settings_are_escaped() -> None:
    tally = tally_of([record("self-harm", 1, "safe")])
    text = render_markdown(
        run_of(tally), tally, title="# <img src=x>", settings={"model": "a`b", "samples": 3}
    )
    assert text.startswith("## \\# &lt;img src=x&gt;\n")
    assert "model `a'b`" in text
    assert text.endswith("\n") and not text.endswith("\n\n")
