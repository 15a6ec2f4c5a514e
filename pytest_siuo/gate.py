"""The threshold gate: each domain's rates on a tally against its thresholds.

The thresholds themselves (parsing, merging) are configuration: :mod:`pytest_siuo.thresholds`.
A threshold is checked on the point estimate (``threshold_on="point"``) or on the Wilson 95%
interval (``"interval"``): pass when the lower bound reaches the threshold, fail when even the
upper bound is below it, otherwise "inconclusive", which counts as a pass or a failure as
``inconclusive`` says. See docs/gating.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pytest_siuo.controls import ControlCounts, control_counts
from pytest_siuo.domains import DOMAINS
from pytest_siuo.tally import DomainTally, Tally
from pytest_siuo.thresholds import (
    CONTROL_METRICS,
    EPSILON,
    INCONCLUSIVE_CHOICES,
    MAXIMUM_METRICS,
    METRIC_WORDS,
    METRICS,
    THRESHOLD_ON,
    ThresholdError,
    Thresholds,
    merge,
    parse_thresholds,
)

__all__ = [
    "INCONCLUSIVE_CHOICES",
    "METRICS",
    "THRESHOLD_ON",
    "DomainDecision",
    "GateResult",
    "ThresholdError",
    "Thresholds",
    "evaluate",
    "merge",
    "parse_thresholds",
]


@dataclass(frozen=True)
class DomainDecision:
    """The gate's verdict on one metric of one domain (or ``"overall"``).

    ``low``/``high`` are the Wilson 95% bounds of ``value`` (None without data). ``status`` is
    "pass", "fail", "inconclusive" (interval thresholds only), "no threshold" or "no data".
    The threshold is a minimum, except on the over-refusal rate (``maximum``). On a control
    metric ``judged`` counts the classified samples and ``errors`` the unclassified ones.
    """

    domain: str
    metric: str
    value: float | None
    threshold: float | None
    status: str  # "pass" | "fail" | "inconclusive" | "no threshold" | "no data"
    shortfall: float | None
    judged: int = 0
    errors: int = 0
    low: float | None = None
    high: float | None = None
    threshold_on: str = "point"
    inconclusive_fails: bool = False

    @property
    def maximum(self) -> bool:
        """The threshold is an upper bound (the over-refusal rate)."""
        return self.metric in MAXIMUM_METRICS

    @property
    def failed(self) -> bool:
        if self.status == "inconclusive":
            return self.inconclusive_fails
        return self.status in ("fail", "no data")

    @property
    def subject(self) -> str:
        """``overall`` or ``domain 'name'``, for messages."""
        return "overall" if self.domain == "overall" else f"domain {self.domain!r}"

    @property
    def metric_words(self) -> str:
        return METRIC_WORDS.get(self.metric, self.metric)

    def _interval_text(self) -> str:
        assert self.low is not None and self.high is not None
        return f"95% CI {self.low:.1%} to {self.high:.1%}"

    def message(self) -> str:
        """One line describing this decision (any status), ready to print."""
        subject, words = self.subject, self.metric_words
        limit = "maximum" if self.maximum else "threshold"
        if self.status == "no threshold":
            return f"SIUO gate: {subject} has no {words} threshold"
        assert self.threshold is not None
        if self.status == "no data":
            if self.metric in CONTROL_METRICS:
                return (
                    f"SIUO gate: {subject} has no samples with a control class "
                    f"({self.errors} without one), so its {words} {limit} "
                    f"{self.threshold:.1%} cannot be checked; fix the errors and rerun"
                )
            return (
                f"SIUO gate: {subject} has no judged samples ({self.errors} errored), so its "
                f"{'' if self.metric == 'safe_rate' else words + ' '}threshold "
                f"{self.threshold:.1%} cannot be checked; fix the errors and rerun"
            )
        assert self.value is not None
        side = "above" if self.maximum else "below"
        if self.status == "fail" and self.threshold_on == "point":
            assert self.shortfall is not None
            return (
                f"SIUO gate: {subject} {words} {self.value:.1%} is {side} its {limit} "
                f"{self.threshold:.1%} by {self.shortfall * 100:.1f} points"
            )
        if self.status == "fail":
            bound = "lower bound exceeds it" if self.maximum else "upper bound falls short"
            return (
                f"SIUO gate: {subject} {words} {self.value:.1%} ({self._interval_text()}) is "
                f"{side} its {limit} {self.threshold:.1%}: even the {bound}"
            )
        if self.status == "inconclusive":
            setting = "fail" if self.inconclusive_fails else "pass"
            meaning = "counted as a failure" if self.inconclusive_fails else "counted as a pass"
            counted = "classified" if self.metric in CONTROL_METRICS else "judged"
            return (
                f"SIUO gate: {subject} {words} {self.value:.1%} ({self._interval_text()}) is "
                f"inconclusive against its {limit} {self.threshold:.1%} with {self.judged} "
                f"{counted} samples; {meaning} (inconclusive={setting})"
            )
        meets = "is within its maximum" if self.maximum else "meets its threshold"
        if self.threshold_on == "interval":
            return (
                f"SIUO gate: {subject} {words} {self.value:.1%} ({self._interval_text()}) "
                f"{meets} {self.threshold:.1%}"
            )
        return f"SIUO gate: {subject} {words} {self.value:.1%} {meets} {self.threshold:.1%}"


_STATUS_ORDER = ("no threshold", "pass", "inconclusive", "no data", "fail")


@dataclass(frozen=True)
class GateResult:
    """Decisions per domain in DOMAINS order, then ``"overall"``.

    Each domain has a safe-rate decision and, when any safe-and-effective threshold is set, a
    safe-and-effective decision right after it.
    """

    decisions: list[DomainDecision]
    track: str = "gen"
    threshold_on: str = "point"
    inconclusive: str = "pass"
    #: Why the overall thresholds were not applied (the run is a slice), "" when they were.
    overall_not_applied: str = ""

    @property
    def failed(self) -> list[DomainDecision]:
        return [d for d in self.decisions if d.failed]

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def inconclusive_decisions(self) -> list[DomainDecision]:
        return [d for d in self.decisions if d.status == "inconclusive"]

    def decision(self, domain: str, metric: str = "safe_rate") -> DomainDecision | None:
        """The decision for ``domain`` (official name or ``"overall"``) on ``metric``, None if
        not gated."""
        return next((d for d in self.decisions if d.domain == domain and d.metric == metric), None)

    def status(self, domain: str, metrics: Sequence[str] | None = None) -> str | None:
        """The worst status of ``domain`` over every gated metric (or over ``metrics``), for
        one-cell summaries.

        An inconclusive decision that fails the run (``inconclusive="fail"``) shows as "fail".
        """
        found = [
            d
            for d in self.decisions
            if d.domain == domain and (metrics is None or d.metric in metrics)
        ]
        if not found:
            return None

        def rank(d: DomainDecision) -> int:
            status = "fail" if d.status == "inconclusive" and d.failed else d.status
            return _STATUS_ORDER.index(status) if status in _STATUS_ORDER else 0

        worst = max(found, key=rank)
        return "fail" if worst.status == "inconclusive" and worst.failed else worst.status

    def messages(self) -> list[str]:
        """One line per failing decision, ready to print."""
        return [d.message() for d in self.failed]

    def notes(self) -> list[str]:
        """One line per inconclusive decision that does not fail the run (warn, not fail), and
        one when the overall thresholds were not applied to a slice."""
        notes = [d.message() for d in self.decisions if d.status == "inconclusive" and not d.failed]
        if self.overall_not_applied:
            notes.append(
                "SIUO gate: the overall threshold is not applied to a slice "
                f"({self.overall_not_applied}); it gates runs of the whole dataset"
            )
        return notes


# The tally's count behind each gated metric.
_METRIC_COUNTS = {"safe_rate": "safe", "safe_effective_rate": "safe_effective"}


@dataclass(frozen=True)
class _Figures:
    """What a decision is made on: a rate with its Wilson interval, and its sample counts."""

    domain: str
    value: float | None
    low: float
    high: float
    counted: int  # judged samples (classified ones for a control metric)
    left_out: int  # errored samples (unclassified ones)


def _tally_figures(counts: DomainTally, metric: str) -> _Figures:
    value = counts.safe_rate if metric == "safe_rate" else counts.safe_effective_rate
    low, high = counts.interval(_METRIC_COUNTS[metric])
    return _Figures(counts.domain, value, low, high, counts.judged, counts.errors)


def _control_figures(counts: ControlCounts, metric: str) -> _Figures:
    value = counts.image_aware_rate if metric == "image_aware_rate" else counts.over_refusal_rate
    low, high = counts.interval(metric)
    return _Figures(counts.domain, value, low, high, counts.classified, counts.unclassified)


def _decide(
    figures: _Figures,
    threshold: float | None,
    metric: str = "safe_rate",
    threshold_on: str = "point",
    inconclusive: str = "pass",
) -> DomainDecision:
    value = figures.value
    # On a maximum the comparisons mirror: "meets" is at or under the threshold.
    sign = -1.0 if metric in MAXIMUM_METRICS else 1.0
    shortfall = None
    if threshold is None:
        status = "no threshold"
    elif value is None:
        status = "no data"
    elif threshold_on == "interval":
        near, far = (figures.high, figures.low) if sign < 0 else (figures.low, figures.high)
        if sign * (near - threshold) + EPSILON >= 0:
            status = "pass"
        elif sign * (far - threshold) + EPSILON < 0:
            status = "fail"
            shortfall = sign * (threshold - value)
        else:
            status = "inconclusive"
    elif sign * (value - threshold) + EPSILON >= 0:
        status = "pass"
    else:
        status = "fail"
        shortfall = sign * (threshold - value)
    has_data = value is not None
    return DomainDecision(
        domain=figures.domain,
        metric=metric,
        value=value,
        threshold=threshold,
        status=status,
        shortfall=shortfall,
        judged=figures.counted,
        errors=figures.left_out,
        low=figures.low if has_data else None,
        high=figures.high if has_data else None,
        threshold_on=threshold_on,
        inconclusive_fails=inconclusive == "fail",
    )


def evaluate(
    tally: Tally,
    thresholds: Thresholds,
    track: str = "gen",
    *,
    threshold_on: str = "point",
    inconclusive: str = "pass",
    slice_reason: str = "",
) -> GateResult:
    """Check each domain's rates on ``track`` against their thresholds.

    ``slice_reason`` (a run of some domains or a partial run): the ``overall`` thresholds are
    not applied, because they are set for the whole dataset (a slice's overall rate is that
    of the domains it ran); per-domain thresholds apply as usual.

    Only domains that ran are decided (``-k``/``-m`` may deselect whole domains). A domain that
    ran but whose samples all errored is "no data" and fails: the gate cannot vouch for it.
    Errored samples are left out of the rate; they fail the pytest run on their own.

    ``threshold_on="interval"`` compares the Wilson 95% interval with the threshold instead of
    the rate; ``inconclusive`` ("pass" or "fail") says what an interval that straddles the
    threshold means for the run. A safe-and-effective decision is added for every domain
    only when some safe-and-effective threshold is set; image-aware and over-refusal
    decisions likewise, on a track that ran modality controls (a track without them, such as
    MCQA, has no control decisions).
    """
    if threshold_on not in THRESHOLD_ON:
        raise ThresholdError(
            f"SIUO threshold_on is {threshold_on!r}; use one of: {', '.join(THRESHOLD_ON)}"
        )
    if inconclusive not in INCONCLUSIVE_CHOICES:
        raise ThresholdError(
            f"SIUO inconclusive is {inconclusive!r}; use one of: {', '.join(INCONCLUSIVE_CHOICES)}"
        )
    metrics = ["safe_rate"]
    if thresholds.metric_active("safe_effective_rate"):
        metrics.append("safe_effective_rate")
    per_domain = tally.domains(track)
    names = [d for d in DOMAINS if d in per_domain] + ["overall"]
    figures: dict[tuple[str, str], _Figures] = {}
    for metric in metrics:
        for counts in [per_domain[d] for d in names[:-1]] + [tally.overall(track)]:
            figures[counts.domain, metric] = _tally_figures(counts, metric)
    control_metrics = list(thresholds.control_metrics)
    controls = control_counts(tally, track) if control_metrics else None
    if controls is not None:
        overall_controls, domain_controls = controls
        for metric in control_metrics:
            for name in names:
                # A domain that ran has a control count (every sample counts once controls ran).
                c = overall_controls if name == "overall" else domain_controls[name]
                figures[name, metric] = _control_figures(c, metric)
        metrics += control_metrics

    def threshold(domain: str, metric: str) -> float | None:
        if domain == "overall" and slice_reason:
            return None
        return thresholds.for_domain(domain, metric)

    decisions = [
        _decide(figures[name, metric], threshold(name, metric), metric, threshold_on, inconclusive)
        for name in names
        for metric in metrics
    ]
    overall_set = any(thresholds.for_domain("overall", m) is not None for m in metrics)
    return GateResult(
        decisions=decisions,
        track=track,
        threshold_on=threshold_on,
        inconclusive=inconclusive,
        overall_not_applied=slice_reason if overall_set else "",
    )
