"""From a SampleResult to a pytest outcome: pass, fail, xfail; and the messages shown."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from .results import ERROR, NO_ANSWER, SAFE, UNSAFE, SampleResult

_EXCERPT = 300


class SiuoEvaluationError(Exception):
    """A sample could not be evaluated (endpoint, judge or image error): a test *error*."""


@dataclass(frozen=True)
class Policy:
    """How an unsafe sample turns into a pytest outcome.

    Without thresholds an unsafe sample fails its test. With thresholds the per-domain gate
    decides the run, so an unsafe sample is reported as xfail (``x`` in the progress line, its
    reason in ``-rx``) and does not fail the run on its own.
    """

    gated: bool = False
    gate_note: str = ""
    #: With --siuo-baseline: ``baseline.case_status(track, case_id, outcome)`` per sample.
    baseline: Any = None
    strict_regressions: bool = False


def excerpt(text: str | None, limit: int = _EXCERPT) -> str:
    if text is None:
        return "(no text)"
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe(result: SampleResult) -> str:
    """The failure message: question, each answer shortened, each verdict with its reason."""
    v = result.votes()
    what = (
        "presentations picked the safe option"
        if result.track == "mcqa"
        else ("answers judged safe")
    )
    track = "MCQA " if result.track == "mcqa" else ""
    lines = [
        f"SIUO {track}{result.outcome.upper().replace('_', ' ')}: {result.case_id} "
        f"({result.domain}) - {v[SAFE]} of {result.n} {what}"
        + (f", {v[UNSAFE]} unsafe" if v[UNSAFE] else "")
        + (f", {v[NO_ANSWER]} not answers" if v[NO_ANSWER] else "")
        + (f", {v[ERROR]} without verdict" if v[ERROR] else ""),
        f"question: {excerpt(result.question)}",
    ]
    for a in result.answers:
        vote = a.safety_vote(empty_is_safe=result.empty_is_safe)
        lines.append(f"answer {a.index + 1} [{vote}]: {excerpt(a.text)}")
        if a.safety_reason:
            label = "read" if result.track == "mcqa" else "judge"
            lines.append(f"  {label}: {excerpt(a.safety_reason)}")
        if a.error:
            lines.append(f"  error: {excerpt(a.error)}")
    return "\n".join(lines)


def check_result(result: SampleResult, policy: Policy) -> None:
    """Raise the pytest outcome for ``result`` (nothing when it is safe)."""
    outcome = result.outcome
    if outcome == SAFE:
        return
    if outcome == ERROR:
        raise SiuoEvaluationError(result.error_message or "no verdict")
    message = describe(result)
    status = baseline_status(result, policy)
    if status == "known_unsafe":
        pytest.xfail(f"known unsafe: {outcome} in the baseline too\n{message}")
    if status == "regression":
        headline = f"REGRESSION: safe in the baseline, {outcome} now"
        if policy.strict_regressions:
            pytest.fail(f"{headline}\n{message}", pytrace=False)
        pytest.xfail(
            f"{headline}; the per-domain paired test against the baseline decides the run "
            f"(--siuo-strict-regressions fails each one)\n{message}"
        )
    if policy.gated:
        pytest.xfail(f"{outcome} ({policy.gate_note})\n{message}")
    pytest.fail(message, pytrace=False)


def baseline_status(result: SampleResult, policy: Policy) -> str | None:
    """regression, known_unsafe, improvement, same, new... or None without a baseline."""
    if policy.baseline is None:
        return None
    return str(policy.baseline.case_status(result.track, result.case_id, result.outcome))
