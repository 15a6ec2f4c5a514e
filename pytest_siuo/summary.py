"""The terminal summary, rendered from the run's decision: per-domain tables, the verdict, the
gate lines and the baseline comparison, as ``(text, markup)`` pairs for pytest's writer.

Pure: the plugin writes each pair with ``terminalreporter.write_line(text, **markup)``.
"""

from __future__ import annotations

from pytest_siuo.baseline import Comparison
from pytest_siuo.decision import RunResult, TrackResult
from pytest_siuo.failures import answer_excerpt, failed_domain_samples, why
from pytest_siuo.gate import GateResult
from pytest_siuo.tally import DomainTally, Tally
from pytest_siuo.text import pct, shorten, visible

__all__ = ["Line", "failure_lines", "summary_lines", "table_lines", "title"]

#: Failed samples listed on the terminal before "… and N more".
MAX_LISTED = 10

Line = tuple[str, dict[str, bool]]

_HEADERS = (
    "domain",
    "samples",
    "safe %",
    "95% CI",
    "effective %",
    "safe&eff %",
    "errors",
    "threshold",
    "status",
)
_BASELINE_HEADER = "vs baseline"  # shown after "safe %"'s interval when a baseline is compared
_SHOWN = {"pass": "pass", "fail": "FAIL", "no data": "NO DATA", "inconclusive": "unsure"}


def title(track: str) -> str:
    return "SIUO safety summary" + (" (multiple choice)" if track == "mcqa" else "")


def _ci(counts: DomainTally) -> str:
    """The safe rate's 95% Wilson interval, in whole percent: with ~18 samples per domain the
    interval is what keeps a reader from over-reading one flipped sample."""
    if counts.judged == 0:
        return "-"
    low, high = counts.interval("safe")
    return f"{low * 100:.0f}-{high * 100:.0f}"


def _row(
    counts: DomainTally, gate: GateResult | None, comparison: Comparison | None
) -> tuple[list[str], str]:
    decision = gate.decision(counts.domain) if gate is not None else None
    status = (gate.status(counts.domain) if gate is not None else None) or "no threshold"
    domain_comparison = comparison.domain(counts.domain) if comparison is not None else None
    if domain_comparison is not None and domain_comparison.failed:
        status = "fail"  # the baseline gate failed this domain, whatever the thresholds say
    elif (
        domain_comparison is not None
        and status == "no threshold"
        and domain_comparison.status.startswith("pass")
    ):
        status = "pass"
    cells = [
        counts.domain,
        str(counts.total),
        pct(counts.safe_rate),
        _ci(counts),
        *(
            [domain_comparison.change_text if domain_comparison is not None else "-"]
            if comparison is not None
            else []
        ),
        pct(counts.effective_rate),
        pct(counts.safe_effective_rate),
        str(counts.errors),
        pct(decision.threshold if decision is not None else None),
        _SHOWN.get(status, "-"),
    ]
    return cells, status


def table_lines(
    tally: Tally,
    gate: GateResult | None,
    *,
    track: str = "gen",
    markup: bool = False,
    comparison: Comparison | None = None,
) -> list[Line]:
    """The per-domain table of ``track``; with ``markup`` failing rows red, passing green.
    With a baseline ``comparison``, a "vs baseline" column (change in points). Every line has
    the same width. Empty when the track has no records."""
    domains = tally.domains(track)
    if not domains:
        return []
    if gate is not None and gate.track != track:
        gate = None
    if comparison is not None and comparison.track != track:
        comparison = None
    headers = list(_HEADERS)
    if comparison is not None:
        headers.insert(headers.index("95% CI") + 1, _BASELINE_HEADER)
    rows = [_row(counts, gate, comparison) for counts in domains.values()]
    overall_row = _row(tally.overall(track), gate, comparison)
    all_cells = [headers] + [cells for cells, _ in rows] + [overall_row[0]]
    widths = [max(len(cells[i]) for cells in all_cells) for i in range(len(headers))]

    def fmt(cells: list[str]) -> str:
        # Names left-aligned, numbers and status right-aligned, two spaces between columns.
        parts = [cells[0].ljust(widths[0])]
        parts += [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join(parts)

    def style(status: str, bold: bool = False) -> dict[str, bool]:
        if not markup:
            return {}
        chosen: dict[str, bool] = {}
        if status in ("fail", "no data"):
            chosen["red"] = True
        elif status == "pass":
            chosen["green"] = True
        if bold:
            chosen["bold"] = True
        return chosen

    header = fmt(headers)
    rule = "-" * len(header)
    lines: list[Line] = [(header, {"bold": True} if markup else {})]
    lines.append((rule, {}))
    lines += [(fmt(cells), style(status)) for cells, status in rows]
    lines.append((rule, {}))
    lines.append((fmt(overall_row[0]), style(overall_row[1], bold=True)))
    return lines


def _track_lines(tally: Tally, result: TrackResult) -> list[Line]:
    from pytest_siuo.controls import terminal_lines

    lines = table_lines(
        tally, result.gate, track=result.track, markup=True, comparison=result.comparison
    )
    lines += [(line, {}) for line in terminal_lines(tally, result)]
    gate = result.gate
    if gate is not None:
        lines += [(m, {"red": True, "bold": True}) for m in gate.messages()]
        lines += [(n, {"yellow": True}) for n in gate.notes()]
        if gate.passed and gate.inconclusive_decisions:
            lines.append(
                (
                    f"SIUO gate: passed; {len(gate.inconclusive_decisions)} inconclusive "
                    "decisions count as passing (--siuo-inconclusive=pass)",
                    {"yellow": True},
                )
            )
        elif gate.passed:
            lines.append(("SIUO gate: every domain meets its threshold", {"green": True}))
    comparison = result.comparison
    if comparison is not None:
        lines += [(w, {"yellow": True, "bold": True}) for w in comparison.warnings()]
        lines += [(m, {"red": True, "bold": True}) for m in comparison.messages()]
        regressed = comparison.cases_with("regression")
        improved = comparison.cases_with("improvement")
        known = comparison.cases_with("known_unsafe")
        lines.append(
            (
                f"SIUO baseline: {len(regressed)} regressed, {len(improved)} improved, "
                f"{len(known)} known unsafe"
                + (f"; regressed: {', '.join(regressed[:10])}" if regressed else "")
                + (" ..." if len(regressed) > 10 else ""),
                {},
            )
        )
        if comparison.passed:
            lines.append(("SIUO baseline gate: no domain dropped significantly", {"green": True}))
    return lines


def summary_lines(run: RunResult, tally: Tally) -> list[tuple[str, list[Line]]]:
    """Sections ``(title, lines)``: one per track, then the run's verdict."""
    sections = [(title(t.track), _track_lines(tally, t)) for t in run.tracks]
    verdict: list[Line] = [(note, {"yellow": True}) for note in run.notes]
    for case in run.cases:
        if case.kind == "errors" and not case.passed:
            verdict.append((case.message, {"red": True, "bold": True}))
    if run.passed:
        gates = len(run.cases)
        verdict.append(
            (
                f"SIUO verdict: PASSED ({gates} gate case(s) passed)"
                if run.gated
                else "SIUO verdict: PASSED (no gate; every sample is safe)",
                {"green": True, "bold": True},
            )
        )
    else:
        failed = [c for c in run.cases if not c.passed]
        verdict.append(
            (
                "SIUO verdict: FAILED"
                + (
                    f" ({len(failed)} of {len(run.cases)} gate case(s) failed: "
                    + ", ".join(c.nodeid for c in failed[:5])
                    + (" ..." if len(failed) > 5 else "")
                    + ")"
                    if failed
                    else ""
                ),
                {"red": True, "bold": True},
            )
        )
        if (not run.gated and run.failed_samples) or run.evaluated_nothing:
            verdict.append((run.reasons[-1], {"red": True}))  # the reason not a gate case
    sections.append(("", verdict))
    failures = failure_lines(run, tally)
    if failures:
        sections.insert(len(sections) - 1, ("SIUO failed samples", failures))
    return sections


def failure_lines(run: RunResult, tally: Tally, *, limit: int = MAX_LISTED) -> list[Line]:
    """The not-safe samples of the failed domains: id, answer excerpt and judge reason, each
    on one line; server text made visible (no escape sequences reach the terminal)."""
    records = failed_domain_samples(run, tally)
    lines: list[Line] = []
    for record in records[:limit]:
        answer = answer_excerpt(record)
        lines.append(
            (
                f"{record.track}[{record.case_id}] {record.outcome}: "
                + (f"answer {visible(shorten(answer, 80))!r}; " if answer else "")
                + f"reason: {visible(shorten(why(record), 120))}",
                {"red": True},
            )
        )
    if len(records) > limit:
        lines.append((f"… and {len(records) - limit} more (see the JSON/HTML report)", {}))
    elif records:
        lines.append(("every sample and answer is in the JSON/HTML report", {}))
    return lines
