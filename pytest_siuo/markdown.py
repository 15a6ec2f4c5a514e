"""The run as GitHub-flavoured Markdown, for a CI job summary or a pull-request comment.

``render_markdown`` puts the gate's verdict on the first line under the title, then a table per
track (samples, safe % with its Wilson 95% interval, change against the baseline in points,
effective %, errors, threshold, decision), then the regressions with their question and a
shortened answer. Every piece of text that comes from a model, a judge or the dataset is
untrusted: it is flattened to one line and escaped, so it cannot break the table or inject
HTML or links.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

from pytest_siuo.baseline import Comparison, DomainComparison
from pytest_siuo.decision import RunResult, TrackResult
from pytest_siuo.failures import answer_excerpt, failed_domain_samples, unsafe_answer_text, why
from pytest_siuo.gate import DomainDecision, GateResult
from pytest_siuo.tally import DomainTally, Tally
from pytest_siuo.text import flat, pct, shorten

__all__ = ["cell", "render_markdown"]

_EXCERPT = 160
_MAX_LISTED = 50
# Characters that start Markdown syntax inside a line (emphasis, code, links, tables, HTML...).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")


def cell(text: object, limit: int | None = None) -> str:
    """``text`` as one safe line of Markdown: newlines flattened, ``|`` and Markdown syntax
    escaped, ``<``/``>``/``&`` as HTML entities; shortened to ``limit`` characters if given."""
    line = flat(text) if limit is None else shorten(text, limit)
    escaped = html.escape(line, quote=False)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", escaped)


def _code(text: object) -> str:
    """``text`` as an inline code span: Markdown is not parsed there, so nothing is escaped,
    but a backtick would end the span early."""
    return "`" + flat(text).replace("`", "'") + "`"


def _pct(value: float | None) -> str:
    return pct(value, none="–")


def _ci(counts: DomainTally) -> str:
    if not counts.judged:
        return "–"
    low, high = counts.interval("safe")
    return f"{low * 100:.1f}–{high * 100:.1f}"


def _delta(comparison: DomainComparison | None) -> str:
    return "–" if comparison is None else cell(comparison.change_text)


def _threshold(decisions: list[DomainDecision]) -> str:
    parts = []
    for d in decisions:
        if d.threshold is None:
            continue
        name = "safe" if d.metric == "safe_rate" else "safe&eff"
        parts.append(f"{name} ≥ {d.threshold * 100:.0f}%")
    return cell(", ".join(parts)) if parts else "–"


def _decision(decisions: list[DomainDecision], comparison: DomainComparison | None) -> str:
    problems: list[str] = []
    checked = False
    for d in decisions:
        if d.status == "no threshold":
            continue
        checked = True
        what = "safe" if d.metric == "safe_rate" else "safe&eff"
        if d.status == "inconclusive":
            mark = "❌" if d.failed else "⚠️"
            problems.append(f"{mark} {what} inconclusive")
        elif d.status == "fail":
            problems.append(f"❌ {what} below threshold")
        elif d.status == "no data":
            problems.append(f"❌ {what} no data")
    improved = False
    if comparison is not None and comparison.status != "no baseline":
        checked = True
        if comparison.failed:
            problems.append(f"❌ {comparison.status}")
        improved = comparison.status == "pass (improved)"
    if problems:
        return cell(", ".join(problems))
    if not checked:
        return "–"
    return "✅ pass, improved" if improved else "✅ pass"


def _table(
    tally: Tally, gate: GateResult | None, comparison: Comparison | None, track: str
) -> list[str]:
    groups = [*tally.domains(track).values(), tally.overall(track)]
    lines = [
        "| Domain | Samples | Safe % | 95% CI | Δ vs baseline (pts) | Effective % | Errors "
        "| Threshold | Decision |",
        "|:--|--:|--:|--:|--:|--:|--:|--:|:--|",
    ]
    for counts in groups:
        decisions = [d for d in gate.decisions if d.domain == counts.domain] if gate else []
        domain_comparison = comparison.domain(counts.domain) if comparison is not None else None
        name = cell(counts.domain)
        if counts.domain == "overall":
            name = "**overall**"
        cells = [
            name,
            str(counts.total),
            _pct(counts.safe_rate),
            _ci(counts),
            _delta(domain_comparison) if comparison is not None else "–",
            _pct(counts.effective_rate),
            str(counts.errors),
            _threshold(decisions),
            _decision(decisions, domain_comparison),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _answer_excerpt(record: Mapping[str, Any]) -> str:
    """The text of an answer that carried the unsafe verdict (else the first with text)."""
    text = unsafe_answer_text(record.get("answers") or [])
    return f"“{cell(text, _EXCERPT)}”" if text else "(no answer text)"


def _verdict(run: RunResult, tally: Tally) -> str:
    if not run.gated:
        overall = tally.overall(run.tracks[0].track) if run.tracks else tally.overall()
        mark, state = ("ℹ️", "every sample is safe") if run.passed else ("❌", run.reasons[0])
        return (
            f"{mark} **No SIUO gate set** (no thresholds, no baseline): {cell(state)}"
            + (f"; overall safe rate {_pct(overall.safe_rate)}%" if overall.total else "")
        )
    if not run.passed:
        return "❌ **SIUO gate failed**: " + cell("; ".join(run.reasons))
    parts = [f"{len(run.cases)} gate case(s) passed"]
    for t in run.tracks:
        if t.gate is not None and t.gate.inconclusive_decisions:
            parts.append(
                f"{t.track}: {len(t.gate.inconclusive_decisions)} inconclusive (counted as pass)"
            )
    return "✅ **SIUO gate passed**: " + cell("; ".join(parts))


def _settings_line(settings: Mapping[str, Any]) -> str | None:
    parts = []
    model = settings.get("model_id") or settings.get("model")
    if model:
        parts.append(f"model {_code(model)}")
    judge = settings.get("judge_id") or settings.get("judge")
    if judge:
        parts.append(f"judge {_code(judge)}")
    dataset = settings.get("dataset")
    if isinstance(dataset, Mapping) and dataset.get("source"):
        text = f"data {_code(dataset['source'])}"
        if dataset.get("revision"):
            text += f" @ {_code(str(dataset['revision'])[:12])}"
        parts.append(text)
    if settings.get("samples"):
        parts.append(f"{cell(settings['samples'])} answers per sample")
    if settings.get("protocol"):
        parts.append(f"protocol {cell(settings['protocol'])}")
    return " · ".join(parts) if parts else None


def _case_list(tally: Tally, comparison: Comparison, status: str) -> list[str]:
    records = {r["case_id"]: r for r in tally.records(comparison.track)}
    lines = []
    ids = comparison.cases_with(status)
    for case_id in ids[:_MAX_LISTED]:
        record = records[case_id]
        lines.append(
            f"- {_code(case_id)} ({cell(record['domain'])}, now {cell(record['outcome'])}): "
            f"{cell(record.get('question', ''), _EXCERPT)}  \n"
            f"  answer: {_answer_excerpt(record)}"
        )
    if len(ids) > _MAX_LISTED:
        lines.append(f"- … and {len(ids) - _MAX_LISTED} more (see the JSON report)")
    return lines


def _track_section(tally: Tally, result: TrackResult, *, heading: bool) -> list[str]:
    from pytest_siuo.controls import markdown_lines

    gate, comparison = result.gate, result.comparison
    lines = [f"### Track {_code(result.track)}", ""] if heading else []
    lines += _table(tally, gate, comparison, result.track)
    lines.append("")
    lines += markdown_lines(tally, result, cell)
    if gate is not None:
        notes = gate.messages() + gate.notes()
        if notes:
            lines += [f"> {cell(n)}" for n in notes]
            lines.append("")
    if comparison is not None:
        regressions = comparison.cases_with("regression")
        lines += [
            f"### Against the baseline ({cell(comparison.baseline_source)})",
            "",
            f"{len(regressions)} regression(s), "
            f"{len(comparison.cases_with('improvement'))} improvement(s), "
            f"{len(comparison.cases_with('known_unsafe'))} known unsafe, "
            f"{len(comparison.cases_with('new'))} new, {len(comparison.missing)} missing; "
            f"{comparison.method()[0].upper()}{comparison.method()[1:]}.",
            "",
        ]
        lines += [f"> ⚠️ {cell(w)}" for w in comparison.warnings()]
        if comparison.warnings():
            lines.append("")
        if regressions:
            lines += ["#### Regressions (safe in the baseline, not safe now)", ""]
            lines += _case_list(tally, comparison, "regression")
            lines.append("")
        if comparison.missing:
            lines += [
                "<details><summary>Missing baseline cases</summary>",
                "",
                ", ".join(_code(case_id) for case_id in comparison.missing),
                "",
                "</details>",
                "",
            ]
    return lines


def render_markdown(
    run: RunResult,
    tally: Tally,
    *,
    title: str = "SIUO safety report",
    settings: Mapping[str, Any] | None = None,
) -> str:
    """The run as GitHub-flavoured Markdown (e.g. for ``$GITHUB_STEP_SUMMARY``), rendered from
    its decision: the verdict, then each track's table, gate notes and baseline comparison.

    ``settings`` is the report's settings block: model, judge, dataset, samples and protocol
    are shown under the title.
    """
    lines = [f"## {cell(title)}", "", _verdict(run, tally), ""]
    described = _settings_line(settings or {})
    if described:
        lines += [described, ""]
    lines += [f"> {cell(n)}" for n in run.notes]
    if run.notes:
        lines.append("")
    for result in run.tracks:
        lines += _track_section(tally, result, heading=len(run.tracks) > 1)
    samples = failed_domain_samples(run, tally)
    if samples:
        lines += [
            f"<details><summary>Not-safe samples of the failed domains ({len(samples)})</summary>",
            "",
        ]
        for record in samples[:_MAX_LISTED]:
            answer = answer_excerpt(record)
            lines.append(
                f"- {_code(record.track + '[' + record.case_id + ']')} {cell(record.outcome)}: "
                + (f"answer “{cell(answer, _EXCERPT)}”; " if answer else "")
                + f"reason: {cell(why(record), _EXCERPT)}"
            )
        if len(samples) > _MAX_LISTED:
            lines.append(f"- … and {len(samples) - _MAX_LISTED} more (see the JSON report)")
        lines += ["", "</details>", ""]
    failed = [c for c in run.cases if not c.passed]
    if failed:
        lines += ["#### Failed gate cases", ""]
        lines += [f"- {_code(c.nodeid)}: {cell(c.message)}" for c in failed]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"
