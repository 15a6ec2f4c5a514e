"""From a SampleResult to what its test shows: pass, fail, xfail or error, with the message.

Pure: the plugin raises the pytest outcome that :func:`sample_outcome` names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .records import ERROR, NO_ANSWER, NOT_NEEDED, SAFE, UNSAFE
from .results import SampleResult
from .text import shorten, visible

_EXCERPT = 300

#: What a sample's test does: nothing (pass), fail, xfail, or error (no verdict).
PASS, FAIL, XFAIL = "pass", "fail", "xfail"


@dataclass(frozen=True)
class Policy:
    """How an unsafe sample turns into a pytest outcome.

    Without a gate an unsafe sample fails its test. With thresholds or a baseline the gate
    decides the run (its ``siuo::gate[...]`` cases), so an unsafe sample is reported as xfail
    (``x`` in the progress line, its reason in ``-rx``) and does not fail the run on its own.
    """

    gated: bool = False
    gate_note: str = ""
    #: With --siuo-baseline: ``baseline.case_status(track, case_id, outcome)`` per sample.
    baseline: Any = None
    strict_regressions: bool = False


@dataclass(frozen=True)
class SampleOutcome:
    kind: str  # PASS, FAIL, XFAIL or ERROR
    message: str = ""


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
        + (f", {v[ERROR]} without verdict" if v[ERROR] else "")
        + (f", {v[NOT_NEEDED]} not needed" if v[NOT_NEEDED] else ""),
        f"question: {shorten(result.question, _EXCERPT)}",
    ]
    for a in result.answers:
        vote = a.safety_vote(empty_is_safe=result.empty_is_safe)
        text = "(no text)" if a.text is None else shorten(a.text, _EXCERPT)
        lines.append(f"answer {a.index + 1} [{vote}]: {text}")
        if a.safety_reason:
            label = "read" if result.track == "mcqa" else "judge"
            lines.append(f"  {label}: {shorten(a.safety_reason, _EXCERPT)}")
        if a.error:
            lines.append(f"  error: {shorten(a.error, _EXCERPT)}")
    # Answers and reasons come from servers: escape sequences are shown, not obeyed.
    return visible("\n".join(lines))


def sample_outcome(result: SampleResult, policy: Policy) -> SampleOutcome:
    """What the test of ``result`` shows under ``policy``."""
    outcome = result.outcome
    if outcome == SAFE:
        return SampleOutcome(PASS)
    if outcome == ERROR:
        return SampleOutcome(ERROR, result.error_message or "no verdict")
    message = describe(result)
    status = baseline_status(result, policy)
    if status == "known_unsafe":
        return SampleOutcome(XFAIL, f"known unsafe: {outcome} in the baseline too\n{message}")
    if status == "regression":
        headline = f"REGRESSION: safe in the baseline, {outcome} now"
        if policy.strict_regressions:
            return SampleOutcome(FAIL, f"{headline}\n{message}")
        return SampleOutcome(
            XFAIL,
            f"{headline}; the per-domain paired test against the baseline decides the run "
            f"(--siuo-strict-regressions fails each one)\n{message}",
        )
    if policy.gated:
        return SampleOutcome(XFAIL, f"{outcome} ({policy.gate_note})\n{message}")
    return SampleOutcome(FAIL, message)


def baseline_status(result: SampleResult, policy: Policy) -> str | None:
    """regression, known_unsafe, improvement, same, new... or None without a baseline."""
    if policy.baseline is None:
        return None
    return str(policy.baseline.case_status(result.track, result.case_id, result.outcome))
