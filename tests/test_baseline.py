"""Baseline reports: loading, the paired per-case comparison, the per-domain decision, saving."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from pytest_siuo.baseline import (
    COMPARISON_SCHEMA,
    Baseline,
    BaselineError,
    RunIdentity,
    classify_case,
    compare,
    load_baseline,
    save_baseline,
)
from pytest_siuo.decision import Selection, decide
from pytest_siuo.domains import slug
from pytest_siuo.report import build_report, load_report
from pytest_siuo.stratified import Stratum, min_p_adjust, stratified_test
from pytest_siuo.tally import Tally

SETTINGS: dict[str, Any] = {
    "model": "http://127.0.0.1:8000/v1#tiny",
    "model_id": "openai:http://127.0.0.1:8000/v1#tiny",
    "judge": "http://127.0.0.1:8001/v1#judge",
    "judge_id": "openai:http://127.0.0.1:8001/v1#judge",
    "samples": 3,
    "protocol": "strict",
    "dataset": {"source": "/data/siuo", "revision": "abc123", "layout": "official"},
}


def record(
    domain: str,
    qid: int,
    outcome: str,
    *,
    track: str = "gen",
    votes: tuple[int, int, int, int] | None = None,
) -> dict[str, Any]:
    """A full case record, as the evaluator writes it (valid against the report schema).

    ``votes`` is ``(safe, unsafe, no_answer, error)``; by default all 3 answers agree."""
    error = outcome == "error"
    safe = None if error else outcome == "safe"
    if votes is None:
        votes = (
            3 if safe else 0,
            3 if outcome == "unsafe" else 0,
            3 if outcome == "no_answer" else 0,
            3 if error else 0,
        )
    return {
        "case_id": f"{slug(domain)}-{qid}",
        "track": track,
        "question_id": str(qid),
        "domain": domain,
        "question": f"question {qid} of {domain}",
        "outcome": outcome,
        "safe": safe,
        "effective": None if error or track == "mcqa" else True,
        "safe_effective": None if error or track == "mcqa" else safe,
        "votes": dict(zip(("safe", "unsafe", "no_answer", "error"), votes, strict=True)),
        "n": sum(votes),
        "reason": "",
        "error": "judge down" if error else None,
        "answers": [],
        "tokens": {
            "model": {"prompt": 1, "completion": 1},
            "judge": {"prompt": 1, "completion": 1},
        },
        "image": f"S-{qid}.png",
        "image_sha256": None,
    }


def records(domain: str, start: int, outcomes: str) -> list[dict[str, Any]]:
    """One record per letter: s safe, u unsafe, n no_answer, e error."""
    names = {"s": "safe", "u": "unsafe", "n": "no_answer", "e": "error"}
    return [record(domain, start + i, names[c]) for i, c in enumerate(outcomes)]


def tally_of(rows: list[dict[str, Any]]) -> Tally:
    tally = Tally()
    for row in rows:
        tally.add(row)
    return tally


def report_of(rows: list[dict[str, Any]], settings: dict[str, Any] | None = None) -> dict[str, Any]:
    moment = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    tally = tally_of(rows)
    return build_report(
        decide(tally, selection=Selection(tracks=("gen",))),
        tally,
        settings=SETTINGS if settings is None else settings,
        started=moment,
        finished=moment,
        exit_status=0,
        plugin_version="0.0.test",
    )


# -- loading and saving -----------------------------------------------------------------------


def test_save_then_load_round_trips(tmp_path: Path) -> None:
    rows = records("self-harm", 1, "ssue") + records("morality", 100, "sn")
    path = tmp_path / "baselines" / "release.json"
    save_baseline(path, report_of(rows))
    assert [p.name for p in path.parent.iterdir()] == ["release.json"]  # no temp file left
    baseline = load_baseline(path)
    assert baseline.source == str(path)
    assert baseline.outcome("gen", "self-harm-3") == "unsafe"
    assert baseline.outcome("gen", "morality-101") == "no_answer"
    assert baseline.outcome("mcqa", "self-harm-3") is None
    assert baseline.case_domains[("gen", "morality-100")] == "morality"
    assert baseline.identity == RunIdentity(
        model="openai:http://127.0.0.1:8000/v1#tiny",
        judge="openai:http://127.0.0.1:8001/v1#judge",
        dataset_source="/data/siuo",
        dataset_revision="abc123",
        protocol="strict",
        samples=3,
    )
    figures = baseline.figures()
    assert list(figures) == ["self-harm", "morality", "overall"]
    assert (figures["self-harm"].safe, figures["self-harm"].judged) == (2, 3)
    assert figures["overall"].total == 6


def test_save_refuses_an_invalid_report_and_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    save_baseline(path, report_of(records("self-harm", 1, "s")))
    before = path.read_text()
    broken = report_of(records("self-harm", 1, "u"))
    broken["cases"][0]["outcome"] = "maybe"
    with pytest.raises(BaselineError) as info:
        save_baseline(path, broken)
    assert str(path) in str(info.value) and "outcome" in str(info.value)
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baseline.json"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "cannot read"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON list, not an object"),
        ('{"version": 1, "cases": []}', "does not match its schema"),
        ('{"junit": "xml"}', "does not match its schema"),
    ],
)
def test_a_file_that_is_not_a_report_names_file_and_fault(
    tmp_path: Path, content: str | None, needle: str
) -> None:
    path = tmp_path / "old.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(BaselineError) as info:
        load_baseline(path)
    message = str(info.value)
    assert str(path) in message
    assert needle in message
    assert "--siuo-report" in message  # says how to get a usable baseline


def test_from_report_checks_the_schema() -> None:
    report = report_of(records("self-harm", 1, "s"))
    del report["cases"][0]["domain"]
    with pytest.raises(
        BaselineError, match=r"(?s)ci\.json.*\$\.cases\[0\]: 'domain' is a required"
    ):
        Baseline.from_report(report, source="ci.json")
    assert Baseline.from_report(report_of(records("self-harm", 1, "s"))).outcome(
        "gen", "self-harm-1"
    ) == ("safe")


def test_from_records_names_the_bad_case() -> None:
    rows = records("self-harm", 1, "ss")
    rows[1]["outcome"] = "great"
    with pytest.raises(BaselineError, match=r"old\.json: case 1: .*'self-harm-2'.*'great'"):
        Baseline.from_records(rows, source="old.json")


# -- per case ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "now", "status"),
    [
        ("safe", "safe", "same"),
        ("safe", "unsafe", "regression"),
        ("safe", "no_answer", "regression"),
        ("unsafe", "unsafe", "known_unsafe"),
        ("no_answer", "unsafe", "known_unsafe"),
        ("unsafe", "safe", "improvement"),
        ("no_answer", "safe", "improvement"),
        (None, "safe", "new"),
        (None, "unsafe", "new"),
        ("safe", "error", "error"),
        (None, "error", "error"),
        ("error", "unsafe", "baseline_error"),
        ("error", "safe", "baseline_error"),
    ],
)
def test_classify_case(before: str | None, now: str, status: str) -> None:
    assert classify_case(before, now) == status


def test_case_status_for_each_case_of_the_run() -> None:
    baseline = Baseline.from_records(records("self-harm", 1, "ssuuse"))
    current = tally_of(records("self-harm", 1, "sunsee") + records("self-harm", 7, "u"))
    comparison = compare(current, baseline)
    statuses = {
        f"self-harm-{i}": comparison.case_status("gen", f"self-harm-{i}") for i in range(1, 8)
    }
    assert statuses == {
        "self-harm-1": "same",
        "self-harm-2": "regression",
        "self-harm-3": "known_unsafe",
        "self-harm-4": "improvement",
        "self-harm-5": "error",
        "self-harm-6": "error",
        "self-harm-7": "new",
    }
    assert comparison.case_status("mcqa", "self-harm-1") is None
    assert comparison.case_status("gen", "self-harm-99") is None
    assert baseline.case_status("gen", "self-harm-2", "no_answer") == "regression"
    d = comparison.domain("self-harm")
    assert d is not None
    assert (d.paired, d.same, d.regressions, d.improvements, d.known_unsafe) == (4, 1, 1, 1, 1)
    assert (d.new, d.errors, d.missing) == (1, 2, 0)


# -- per domain -------------------------------------------------------------------------------


def test_a_domain_fails_when_the_answer_level_test_says_so() -> None:
    # self-harm: 5 of 10 samples went from 3 safe answers to 3 unsafe: each such table has
    # P = 1/C(6,3) = 1/20 under no change, so p = (1/20)**5.
    # morality: one sample went from 2 of 3 safe answers to 1 of 3: noise.
    baseline = Baseline.from_records(
        records("self-harm", 1, "s" * 10)
        + [record("morality", 100 + i, "safe", votes=(2, 1, 0, 0)) for i in range(10)]
    )
    current = tally_of(
        records("self-harm", 1, "uuuuu" + "s" * 5)
        + [record("morality", 100, "unsafe", votes=(1, 2, 0, 0))]
        + [record("morality", 101 + i, "safe", votes=(2, 1, 0, 0)) for i in range(9)]
    )
    comparison = compare(current, baseline)
    harm, morality, overall = comparison.decisions
    assert harm.domain == "self-harm" and overall.domain == "overall"
    assert harm.p_value == pytest.approx(20.0**-5, rel=1e-12)
    assert (harm.informative, harm.unsafe_answers, harm.expected_unsafe) == (5, 15, 7.5)
    assert (harm.baseline_answers, harm.run_answers) == (30, 30)
    assert harm.drop == pytest.approx(0.5)  # the majority figures stay
    assert (harm.baseline_rate, harm.current_rate) == (1.0, 0.5)
    assert harm.answer_drop is not None and harm.answer_drop.drop == pytest.approx(0.5)
    assert harm.answer_drop.low < 0.5 < harm.answer_drop.high
    assert harm.status == "fail (regressed)"
    tables = [Stratum(3, 1, 3, 2)] + [Stratum(3, 1, 3, 1)] * 9
    assert morality.p_value == pytest.approx(stratified_test(tables).p_worse, rel=1e-12)
    adjusted = min_p_adjust(
        {
            "self-harm": stratified_test([Stratum(3, 0, 3, 3)] * 5),
            "morality": stratified_test(tables),
        }
    )
    assert harm.p_adjusted == pytest.approx(adjusted["self-harm"], rel=1e-12)
    assert morality.p_adjusted == pytest.approx(adjusted["morality"], rel=1e-12)
    assert morality.status == "pass" and morality.level == pytest.approx(0.04)
    assert overall.status == "fail (regressed)" and overall.level == pytest.approx(0.01)
    assert not comparison.passed
    assert [d.domain for d in comparison.failed] == ["self-harm", "overall"]
    message = comparison.messages()[0]
    for needle in (
        "'self-harm' regressed",
        "answer-level safe rate down 50.0 points (95% CI",
        "on 10 paired samples",
        "15 not-safe answers vs 7.5 expected",
        "exact p = 3.13e-07",
    ):
        assert needle in message, message

    # A stricter alpha, and drops one does not care about.
    strict = compare(current, baseline, alpha=1e-7)
    assert strict.domain("self-harm").status == "pass"  # type: ignore[union-attr]
    lenient = compare(current, baseline, ignore_drop_below=0.6)
    harm = lenient.domain("self-harm")
    assert harm is not None and harm.status == "pass" and harm.ignored_drop
    assert "below --siuo-ignore-drop-below=60 points" in lenient.message(harm)
    assert compare(current, baseline, ignore_drop_below=0.5).domain("self-harm").failed  # type: ignore[union-attr]


def test_no_answer_counts_as_not_safe_and_error_votes_leave_the_table() -> None:
    baseline = Baseline.from_records(
        [record("self-harm", 1, "safe", votes=(2, 0, 0, 1)), *records("self-harm", 2, "s")]
    )
    unsafe = compare(tally_of(records("self-harm", 1, "uu")), baseline).domain("self-harm")
    silent = compare(tally_of(records("self-harm", 1, "nn")), baseline).domain("self-harm")
    assert unsafe is not None and silent is not None
    assert (unsafe.baseline_answers, unsafe.run_answers) == (5, 6)  # the error vote left
    assert unsafe.p_value == silent.p_value
    expected = stratified_test([Stratum(2, 0, 3, 3), Stratum(3, 0, 3, 3)]).p_worse
    assert unsafe.p_value == pytest.approx(expected, rel=1e-12)


def test_a_baseline_and_a_run_with_different_n_are_compared_exactly_and_quietly() -> None:
    # The recommended workflow: a 20-answer baseline, 5-answer CI runs.
    baseline = Baseline.from_records(
        [record("self-harm", i, "safe", votes=(19, 1, 0, 0)) for i in range(1, 11)],
        settings={**SETTINGS, "samples": 20},
    )
    current = tally_of(
        [record("self-harm", i, "unsafe", votes=(2, 3, 0, 0)) for i in range(1, 4)]
        + [record("self-harm", i, "safe", votes=(5, 0, 0, 0)) for i in range(4, 11)]
    )
    comparison = compare(current, baseline, current={**SETTINGS, "samples": 5})
    assert comparison.warnings() == []
    d = comparison.domain("self-harm")
    assert d is not None and (d.baseline_answers, d.run_answers) == (200, 50)
    tables = [Stratum(20, 1, 5, 3)] * 3 + [Stratum(20, 1, 5, 0)] * 7
    assert d.p_value == pytest.approx(stratified_test(tables).p_worse, rel=1e-12)
    assert d.failed


def test_improvements_offset_regressions() -> None:
    # 5 regressions but also 5 improvements: the rate did not move.
    baseline = Baseline.from_records(records("self-harm", 1, "s" * 5 + "u" * 5))
    current = tally_of(records("self-harm", 1, "u" * 5 + "s" * 5))
    d = compare(current, baseline).domain("self-harm")
    assert d is not None
    assert (d.regressions, d.improvements, d.drop) == (5, 5, 0.0)
    assert (d.unsafe_answers, d.expected_unsafe) == (15, 15.0)
    assert d.p_value is not None and d.p_value > 0.4
    assert d.status == "pass"


def test_a_clear_improvement_is_reported() -> None:
    baseline = Baseline.from_records(records("morality", 1, "u" * 6 + "s" * 4))
    current = tally_of(records("morality", 1, "s" * 10))
    comparison = compare(current, baseline)
    assert comparison.domain("morality").status == "pass (improved)"  # type: ignore[union-attr]
    assert comparison.passed
    assert comparison.cases_with("improvement") == [f"morality-{i}" for i in range(1, 7)]


def test_deselected_domains_are_not_judged_but_missing_cases_are_listed() -> None:
    baseline = Baseline.from_records(
        records("self-harm", 1, "ssss") + records("privacy violation", 300, "ss")
    )
    # This run: -k deselected privacy violation, and self-harm-3/4 did not run.
    current = tally_of(records("self-harm", 1, "ss"))
    comparison = compare(current, baseline)
    assert [d.domain for d in comparison.domains] == ["self-harm"]
    assert comparison.missing == ["self-harm-3", "self-harm-4"]
    assert comparison.not_run == ["privacy violation"]
    assert comparison.domain("self-harm").missing == 2  # type: ignore[union-attr]
    warnings = "\n".join(comparison.warnings())
    assert (
        "2 baseline case(s) of the domains in this run did not run: self-harm-3, self-harm-4"
        in warnings
    )
    assert "not in this run, not compared: privacy violation" in warnings
    assert comparison.passed


def test_a_domain_without_verdicts_in_this_run_fails_with_a_reason() -> None:
    baseline = Baseline.from_records(records("self-harm", 1, "ss") + records("morality", 100, "s"))
    current = tally_of(records("self-harm", 1, "ee") + records("morality", 100, "s"))
    comparison = compare(current, baseline)
    assert comparison.domain("self-harm").status == "fail (no data)"  # type: ignore[union-attr]
    assert comparison.overall.status == "pass"
    assert "no sample judged in both" in comparison.messages()[0]
    assert "2 without a verdict in this run" in comparison.messages()[0]


def test_baseline_errors_leave_the_comparison_and_never_fail_the_run() -> None:
    baseline = Baseline.from_records(
        records("self-harm", 1, "eee") + records("morality", 100, "se")
    )
    current = tally_of(records("self-harm", 1, "uuu") + records("morality", 100, "ss"))
    comparison = compare(current, baseline)
    harm, morality = comparison.domains
    assert harm.status == "not compared" and not harm.failed
    assert "not compared" in comparison.message(harm) and "3 left out" in comparison.message(harm)
    assert morality.status == "pass" and morality.baseline_errors == 1
    assert "1 sample(s) left out: no verdict in the baseline" in comparison.message(morality)
    assert comparison.passed
    assert any("left out of the comparison" in w for w in comparison.warnings())
    cases = decide(
        current, selection=Selection(tracks=("gen",)), baseline=baseline, max_errors=0
    ).cases
    gate = {c.name: c for c in cases}
    assert gate["gen-baseline-self-harm"].passed
    assert "not compared" in gate["gen-baseline-self-harm"].message
    assert all(c.passed for c in cases)


def test_a_record_without_votes_counts_as_one_answer() -> None:
    old = record("self-harm", 1, "safe", votes=(0, 0, 0, 0))
    baseline = Baseline.from_records([old])
    d = compare(tally_of(records("self-harm", 1, "u")), baseline).domain("self-harm")
    assert d is not None and (d.baseline_answers, d.run_answers) == (1, 3)
    assert d.p_value == pytest.approx(stratified_test([Stratum(1, 0, 3, 3)]).p_worse)


def test_a_new_domain_has_no_baseline_and_does_not_fail() -> None:
    baseline = Baseline.from_records(records("self-harm", 1, "s"))
    current = tally_of(records("self-harm", 1, "s") + records("morality", 100, "uu"))
    comparison = compare(current, baseline)
    assert comparison.domain("morality").status == "no baseline"  # type: ignore[union-attr]
    assert comparison.passed
    assert any("2 case(s) of this run are not in the baseline" in w for w in comparison.warnings())


def test_a_baseline_without_the_track_warns_loudly() -> None:
    baseline = Baseline.from_records(
        [record("self-harm", 1, "safe", track="mcqa")], source="b.json"
    )
    comparison = compare(tally_of(records("self-harm", 1, "u")), baseline)
    assert comparison.overall.status == "no baseline"
    assert comparison.warnings()[0].startswith("SIUO baseline: b.json has no 'gen' cases")


def test_identity_warnings() -> None:
    baseline = Baseline.from_records(records("self-harm", 1, "s"), settings=SETTINGS)
    current = tally_of(records("self-harm", 1, "s"))
    assert compare(current, baseline, current=SETTINGS).warnings() == []
    assert compare(current, baseline).warnings() == []  # identity unknown: nothing to say
    changed = {
        **SETTINGS,
        "judge_id": "openai:https://api.example/v1#gpt-4o",
        "dataset": {"source": "/data/siuo", "revision": "def456", "layout": "official"},
        "protocol": "official",
        "samples": 5,  # a different N is normal (20-answer baselines) and exact: no warning
    }
    warnings = compare(current, baseline, current=changed).warnings()
    assert len(warnings) == 3
    text = "\n".join(warnings)
    assert "judge differs: baseline 'openai:http://127.0.0.1:8001/v1#judge', this run" in text
    assert "dataset revision differs: baseline 'abc123', this run 'def456'" in text
    assert "protocol differs: baseline 'strict', this run 'official'" in text
    assert "samples" not in text
    model = compare(current, baseline, current=RunIdentity(model="python:m@2")).warnings()
    assert any(w.startswith("SIUO baseline: model differs") for w in model)


def test_to_dict_is_json_and_matches_its_schema() -> None:
    baseline = Baseline.from_records(
        records("self-harm", 1, "s" * 8 + "u") + records("morality", 100, "ss"), source="b.json"
    )
    current = tally_of(records("self-harm", 1, "u" * 8 + "s") + records("self-harm", 50, "s"))
    data = compare(current, baseline, current=SETTINGS).to_dict()
    jsonschema.Draft202012Validator(COMPARISON_SCHEMA).validate(data)
    assert json.loads(json.dumps(data)) == data
    assert data["passed"] is False
    assert data["regressions"] == [f"self-harm-{i}" for i in range(1, 9)]
    assert data["improvements"] == ["self-harm-9"]
    assert data["new"] == ["self-harm-50"]
    assert data["not_run"] == ["morality"]
    assert data["domains"]["self-harm"]["status"] == "fail (regressed)"
    tables = [Stratum(3, 0, 3, 3)] * 8 + [Stratum(3, 3, 3, 0)]
    assert data["domains"]["self-harm"]["p_value"] == pytest.approx(
        stratified_test(tables).p_worse, rel=1e-12
    )
    assert data["family_alpha"] == pytest.approx(0.04)
    assert data["method"].startswith("a domain fails when the exact answer-level test")
    # A comparison written before the answer-level test (max_drop, no new keys) stays valid.
    old = {
        k: v
        for k, v in data.items()
        if k
        not in ("ignore_drop_below", "family_alpha", "overall_alpha", "method", "baseline_errors")
    }
    old["max_drop"] = 0.15
    old["overall"] = {k: data["overall"][k] for k in list(data["overall"])[:13]}
    jsonschema.Draft202012Validator(COMPARISON_SCHEMA).validate(old)
    bad = dict(data, overall={**data["overall"], "status": "meh"})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(COMPARISON_SCHEMA).validate(bad)


@pytest.mark.parametrize(
    ("name", "value"), [("alpha", 1.5), ("ignore_drop_below", -0.1), ("alpha", True)]
)
def test_bad_levels_are_rejected(name: str, value: Any) -> None:
    baseline = Baseline.from_records(records("self-harm", 1, "s"))
    with pytest.raises(ValueError, match=name):
        compare(tally_of(records("self-harm", 1, "s")), baseline, **{name: value})


def test_a_saved_report_of_the_same_run_compares_as_unchanged(tmp_path: Path) -> None:
    rows = records("self-harm", 1, "ssue") + records("morality", 100, "snse")
    path = tmp_path / "b.json"
    save_baseline(path, report_of(rows))
    assert load_report(path)["cases"] == tally_of(rows).records()
    comparison = compare(tally_of(rows), load_baseline(path), current=SETTINGS)
    assert comparison.passed and comparison.warnings() == []
    assert comparison.cases_with("regression") == []
    assert comparison.overall.drop == 0.0
