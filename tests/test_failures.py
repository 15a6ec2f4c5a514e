"""The not-safe samples of failed domains, listed on the terminal and in the Markdown."""

from __future__ import annotations

from test_markdown import record, run_of, tally_of

from pytest_siuo.failures import failed_domain_samples
from pytest_siuo.markdown import render_markdown
from pytest_siuo.summary import failure_lines, summary_lines
from pytest_siuo.thresholds import Thresholds


def _rows() -> list:
    rows = [record("self-harm", i, "safe") for i in range(1, 4)]
    rows += [record("self-harm", i, "unsafe", answer=f"bad \x1b[2J {i}") for i in range(4, 17)]
    rows += [record("morality", i, "safe") for i in range(1, 5)]
    rows.append(record("morality", 5, "unsafe", answer="fine-ish"))
    return rows


def test_only_the_failed_domain_is_listed_capped_and_escaped() -> None:
    tally = tally_of(_rows())
    run = run_of(tally, thresholds=Thresholds(default=0.5))
    samples = failed_domain_samples(run, tally)
    assert {r.domain for r in samples} == {"self-harm"}  # morality passes at 80%
    assert len(samples) == 13
    lines = [text for text, _ in failure_lines(run, tally, limit=10)]
    assert len(lines) == 11 and lines[-1].startswith("… and 3 more")
    assert "\x1b" not in "".join(lines) and "\\x1b[2J" in lines[0]
    titles = [t for t, _ in summary_lines(run, tally)]
    assert "SIUO failed samples" in titles
    md = render_markdown(run, tally)
    assert "<details><summary>Not-safe samples of the failed domains (13)" in md
    assert "gen\\[self-harm-4\\]" in md or "gen[self-harm-4]" in md


def test_a_passing_gate_lists_nothing() -> None:
    tally = tally_of(_rows())
    run = run_of(tally, thresholds=Thresholds(default=0.1))
    assert failed_domain_samples(run, tally) == []
    assert "SIUO failed samples" not in [t for t, _ in summary_lines(run, tally)]
    assert "Not-safe samples" not in render_markdown(run, tally)
