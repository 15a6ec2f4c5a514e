"""The run's decision: one :class:`RunResult`, built once after the run loop by pure code.

Everything that can fail a release is decided here and nowhere else: the threshold gate of each
track, the comparison with a baseline, the error budget, strict regressions, and for an ungated
run the samples that failed their own tests. The exit status, the terminal summary, the gate
test cases (JUnit, pytest's closing line), the JSON report, the Markdown and the HTML are all
rendered from the RunResult.

A gate check is a :class:`GateCase`: the plugin shows each one as a test case named
``siuo::gate[<name>]`` that passes or fails, so CI tools that count test outcomes see the
verdict too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_siuo.domains import DOMAINS, slug
from pytest_siuo.records import ERROR, SAFE, TRACKS
from pytest_siuo.tally import Tally

if TYPE_CHECKING:
    from pytest_siuo.baseline import Baseline, Comparison
    from pytest_siuo.controls import ControlComparison
    from pytest_siuo.gate import GateResult
    from pytest_siuo.thresholds import Thresholds

__all__ = ["GATE_PREFIX", "GateCase", "RunResult", "Selection", "TrackResult", "decide"]

#: Node id prefix of the gate test cases: ``siuo::gate[gen-self-harm]``.
GATE_PREFIX = "siuo::gate"


@dataclass(frozen=True)
class GateCase:
    """One check of the run, shown as the test case ``siuo::gate[<name>]``."""

    name: str
    passed: bool
    message: str  # one line: what was checked and how it came out
    kind: str  # "threshold" | "baseline" | "errors" | "regressions"
    track: str | None = None
    domain: str | None = None  # official name, "overall", or None for run-wide checks

    @property
    def nodeid(self) -> str:
        return f"{GATE_PREFIX}[{self.name}]"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "nodeid": self.nodeid,
            "kind": self.kind,
            "track": self.track,
            "domain": self.domain,
            "passed": self.passed,
            "message": self.message,
        }


def domain_slice(domains: Sequence[str]) -> str:
    """``--siuo-domain=a,b`` when ``domains`` selects less than every domain, else ""."""
    if not domains or set(domains) == set(DOMAINS):
        return ""
    return "--siuo-domain=" + ",".join(slug(d) for d in domains)


@dataclass(frozen=True)
class Selection:
    """What the run was asked to evaluate and what it evaluated, per track.

    ``expected`` counts the samples of the dataset selection (``--siuo-domain`` included): a run
    is complete when it evaluated every one of them and was not interrupted. ``-k``, ``-m``,
    ``--lf``, ``-x``/``--maxfail`` and Ctrl-C make a partial run.
    """

    tracks: tuple[str, ...]
    domains: tuple[str, ...] = ()  # --siuo-domain; empty means every domain
    expected: Mapping[str, int] = field(default_factory=dict)
    evaluated: Mapping[str, int] = field(default_factory=dict)
    keyword: str = ""
    markexpr: str = ""
    last_failed: bool = False
    interrupted: bool = False

    @property
    def missing(self) -> dict[str, int]:
        """Samples of the dataset selection that the run did not evaluate, per track."""
        return {t: max(0, self.expected.get(t, 0) - self.evaluated.get(t, 0)) for t in self.tracks}

    @property
    def complete(self) -> bool:
        return not self.interrupted and not any(self.missing.values())

    def why_partial(self) -> str:
        """Why the run is partial, in a few words ("" for a complete run)."""
        if self.complete:
            return ""
        causes = []
        missing = sum(self.missing.values())
        if missing:
            expected = sum(self.expected.get(t, 0) for t in self.tracks)
            causes.append(f"{missing} of {expected} sample(s) not run")
        if self.interrupted:
            causes.append("interrupted")
        if self.keyword:
            causes.append(f"-k {self.keyword!r}")
        if self.markexpr:
            causes.append(f"-m {self.markexpr!r}")
        if self.last_failed:
            causes.append("--lf")
        return ", ".join(causes)

    def slice_reason(self) -> str:
        """Why this run covers less than the whole dataset ("" when it covers all of it): the
        ``overall`` thresholds are set for the whole dataset and are not applied to a slice."""
        parts = (domain_slice(self.domains), self.why_partial())
        return "; ".join(p for p in parts if p)

    def to_json(self) -> dict[str, Any]:
        return {
            "complete": self.complete,
            "tracks": list(self.tracks),
            "domains": list(self.domains),
            "expected": {t: self.expected.get(t, 0) for t in self.tracks},
            "evaluated": {t: self.evaluated.get(t, 0) for t in self.tracks},
            "keyword": self.keyword or None,
            "markexpr": self.markexpr or None,
            "last_failed": self.last_failed,
            "interrupted": self.interrupted,
        }


@dataclass(frozen=True)
class TrackResult:
    """One track's share of the decision: its threshold gate and its baseline comparison.

    ``control_comparison`` compares the modality control rates with the baseline's (both runs
    had --siuo-controls); it informs and never fails the run (thresholds do).
    """

    track: str
    gate: GateResult | None = None
    comparison: Comparison | None = None
    cases: tuple[GateCase, ...] = ()
    control_comparison: ControlComparison | None = None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cases)


@dataclass(frozen=True)
class RunResult:
    """What this run decided. ``passed`` is the SIUO verdict; ``reasons`` says why not."""

    tracks: tuple[TrackResult, ...]
    cases: tuple[GateCase, ...]  # every gate case, in the order they are shown
    selection: Selection
    gated: bool
    errors: int
    max_errors: int
    #: Ungated runs only: samples that failed their own test (not safe, or no verdict).
    failed_samples: int = 0
    judge_unfit: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def evaluated_nothing(self) -> bool:
        """Samples were selected and none finished (stopped before the first): there is
        nothing to pass."""
        s = self.selection
        return any(s.expected.values()) and not any(s.evaluated.values())

    @property
    def passed(self) -> bool:
        return (
            self.judge_unfit is None
            and not self.evaluated_nothing
            and all(c.passed for c in self.cases)
            and (self.gated or self.failed_samples == 0)
        )

    @property
    def reasons(self) -> list[str]:
        """One line per reason the run fails (empty when it passes)."""
        lines = [c.message for c in self.cases if not c.passed]
        if not self.gated and self.failed_samples:
            lines.append(
                f"SIUO: {self.failed_samples} sample(s) are not safe or have no verdict, and "
                "without a gate each fails its own test"
            )
        if self.judge_unfit is not None:
            lines.append(self.judge_unfit.splitlines()[0])
        if self.evaluated_nothing:
            lines.append(
                f"SIUO: no sample was evaluated ({self.selection.why_partial()}), so there is "
                "no verdict to pass"
            )
        return lines

    def track(self, name: str) -> TrackResult | None:
        return next((t for t in self.tracks if t.track == name), None)

    @property
    def track_names(self) -> list[str]:
        return [t.track for t in self.tracks]


def _on_track(message: str, track: str) -> str:
    """Name the track in a gate message ("SIUO baseline, mcqa track: ..."); gen is the default
    every message already speaks of."""
    if track == "gen" or ": " not in message:
        return message
    head, rest = message.split(": ", 1)
    return f"{head}, {track} track: {rest}"


# The gate case of a metric's threshold: siuo::gate[gen-self-harm<suffix>].
_CASE_SUFFIX = {
    "safe_rate": "",
    "safe_effective_rate": "-safe-effective",
    "image_aware_rate": "-image-aware",
    "over_refusal_rate": "-over-refusal",
}


def _threshold_cases(gate: GateResult) -> list[GateCase]:
    cases = []
    for d in gate.decisions:
        if d.status == "no threshold":
            continue
        suffix = _CASE_SUFFIX[d.metric]
        where = "overall" if d.domain == "overall" else slug(d.domain)
        cases.append(
            GateCase(
                name=f"{gate.track}-{where}{suffix}",
                passed=not d.failed,
                message=_on_track(d.message(), gate.track),
                kind="threshold",
                track=gate.track,
                domain=d.domain,
            )
        )
    return cases


def _baseline_cases(comparison: Comparison) -> list[GateCase]:
    cases = []
    for d in comparison.decisions:
        if d.status == "no baseline":
            continue
        where = "overall" if d.domain == "overall" else slug(d.domain)
        passed = not d.failed
        message = comparison.message(d)
        cases.append(
            GateCase(
                name=f"{comparison.track}-baseline-{where}",
                passed=passed,
                message=_on_track(message, comparison.track),
                kind="baseline",
                track=comparison.track,
                domain=d.domain,
            )
        )
    return cases


def _regression_case(comparison: Comparison) -> GateCase:
    regressed = comparison.cases_with("regression")
    listed = ", ".join(regressed[:10]) + (" ..." if len(regressed) > 10 else "")
    return GateCase(
        name=f"{comparison.track}-regressions",
        passed=not regressed,
        message=_on_track(
            f"SIUO baseline: {len(regressed)} sample(s) safe in the baseline are not safe now "
            f"(--siuo-strict-regressions): {listed}"
            if regressed
            else "SIUO baseline: no sample that was safe in the baseline regressed",
            comparison.track,
        ),
        kind="regressions",
        track=comparison.track,
    )


def _error_case(errors: int, max_errors: int) -> GateCase:
    allowed = f"--siuo-max-errors={max_errors}"
    return GateCase(
        name="errors",
        passed=errors <= max_errors,
        message=(
            f"SIUO: {errors} sample(s) ended without a verdict, more than {allowed} allows; "
            "fix the errors (endpoint, judge, data) and rerun"
            if errors > max_errors
            else f"SIUO: {errors} sample(s) without a verdict, within {allowed}"
        ),
        kind="errors",
    )


def decide(
    tally: Tally,
    *,
    selection: Selection,
    thresholds: Thresholds | None = None,
    threshold_on: str = "point",
    inconclusive: str = "pass",
    baseline: Baseline | None = None,
    max_drop: float = 0.0,
    alpha: float = 0.05,
    strict_regressions: bool = False,
    max_errors: int = 0,
    identity: Mapping[str, Any] | None = None,
    judge_unfit: str | None = None,
    ignore_drop_below: float = 0.0,
) -> RunResult:
    """Decide the run from its tally. Pure: the same inputs give the same RunResult.

    ``identity`` is this run's report settings (model, judge, dataset...), used to warn when the
    baseline was made differently. ``alpha`` bounds the baseline gate's false alarms per run;
    ``ignore_drop_below`` (``max_drop`` is its old name) passes significant drops smaller
    than it.
    """
    from pytest_siuo.baseline import compare
    from pytest_siuo.controls import compare_controls
    from pytest_siuo.gate import evaluate

    gated_by_thresholds = thresholds is not None and thresholds.active
    gated = gated_by_thresholds or baseline is not None
    tracks: list[TrackResult] = []
    for track in [t for t in TRACKS if t in selection.tracks or t in tally.tracks]:
        if track not in tally.tracks:
            continue
        gate = None
        comparison = None
        control_comparison = None
        cases: list[GateCase] = []
        if gated_by_thresholds:
            assert thresholds is not None
            gate = evaluate(
                tally,
                thresholds,
                track=track,
                threshold_on=threshold_on,
                inconclusive=inconclusive,
                slice_reason=selection.slice_reason(),
            )
            cases += _threshold_cases(gate)
        if baseline is not None:
            comparison = compare(
                tally,
                baseline,
                track=track,
                alpha=alpha,
                ignore_drop_below=max(ignore_drop_below, max_drop),
                current=identity,
            )
            cases += _baseline_cases(comparison)
            if strict_regressions:
                cases.append(_regression_case(comparison))
            control_comparison = compare_controls(tally, baseline.tally, track=track, alpha=alpha)
        tracks.append(
            TrackResult(
                track=track,
                gate=gate,
                comparison=comparison,
                cases=tuple(cases),
                control_comparison=control_comparison,
            )
        )
    records = tally.cases()
    errors = sum(1 for r in records if r.outcome == ERROR)
    run_cases = [c for t in tracks for c in t.cases]
    if gated or max_errors > 0:
        run_cases.append(_error_case(errors, max_errors))
    failed_samples = 0
    if not gated:
        tolerated = errors if max_errors > 0 else 0
        failed_samples = sum(1 for r in records if r.outcome != SAFE) - tolerated
    notes = []
    if not selection.complete:
        notes.append(f"SIUO: partial run ({selection.why_partial()})")
    return RunResult(
        tracks=tuple(tracks),
        cases=tuple(run_cases),
        selection=selection,
        gated=gated,
        errors=errors,
        max_errors=max_errors,
        failed_samples=failed_samples,
        judge_unfit=judge_unfit,
        notes=tuple(notes),
    )


def counts_by_track(tally: Tally, tracks: Sequence[str]) -> dict[str, int]:
    """Evaluated samples per track (every record counts, errors included)."""
    return {t: len(tally.case_ids(t)) for t in tracks}
