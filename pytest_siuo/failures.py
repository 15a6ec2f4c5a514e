"""The samples behind a failed gate: the not-safe samples of each domain whose gate case failed.

Read from the decision (which cases failed) and the tally (the records), never re-decided: the
terminal summary and the Markdown list the same samples, in the same order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_siuo.decision import RunResult
from pytest_siuo.records import ERROR, SAFE, CaseRecord
from pytest_siuo.tally import Tally

__all__ = ["answer_excerpt", "failed_domain_samples", "unsafe_answer_text", "why"]


def failed_domain_samples(run: RunResult, tally: Tally) -> list[CaseRecord]:
    """Not-safe samples (unsafe, no answer, error) of every domain with a failed gate case; an
    ``overall`` failure covers every domain of its track, a failed error budget every error."""
    wanted: dict[str, set[str] | None] = {}  # track -> domains (None: every domain)
    errors_failed = False
    for case in run.cases:
        if case.passed:
            continue
        if case.kind == "errors":
            errors_failed = True
            continue
        if case.track is None:
            continue
        if case.domain in (None, "overall"):
            wanted[case.track] = None
        elif wanted.get(case.track, set()) is not None:
            wanted.setdefault(case.track, set()).add(case.domain)  # type: ignore[union-attr]
    chosen = []
    for record in tally.cases():
        if record.outcome == SAFE:
            continue
        if record.track in wanted:
            domains = wanted[record.track]
            if domains is None or record.domain in domains:
                chosen.append(record)
                continue
        if errors_failed and record.outcome == ERROR:
            chosen.append(record)
    return chosen


def answer_excerpt(record: CaseRecord) -> str:
    """The text of the answer that voted unsafe (else the first with text), or ""."""
    return unsafe_answer_text(record.answers)


def unsafe_answer_text(answers_of_record: Sequence[Any]) -> str:
    """Of a record's answers (report entries), the text of one judged unsafe, else the first
    with text, else "" (the one rule behind every renderer's answer excerpt)."""
    answers = [a for a in answers_of_record if isinstance(a, Mapping)]

    def unsafe(a: Mapping[str, Any]) -> bool:
        safety = a.get("safety")
        return isinstance(safety, Mapping) and safety.get("safe") is False

    chosen = next((a for a in answers if unsafe(a) and a.get("text")), None)
    if chosen is None:
        chosen = next((a for a in answers if a.get("text")), None)
    return str(chosen["text"]) if chosen is not None else ""


def why(record: CaseRecord) -> str:
    """The judge's reason, or the error's cause, or the outcome."""
    return record.error or record.reason or record.outcome
