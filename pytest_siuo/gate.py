"""Rate thresholds per domain and the pass/fail decision they make on a tally.

Thresholds come from ``--siuo-threshold`` entries and the ``siuo_thresholds`` ini lines, one
threshold per entry: ``0.8`` or ``default=0.8`` for every domain, ``self-harm=0.95`` (slug or
official name) for one domain, ``overall=0.85`` for the whole track; rates may be written as
fractions or percentages (``95%``). The command line overrides the ini file key by key.

An entry is on the safe rate unless it starts with a metric prefix: ``safe_effective:0.5``,
``safe_effective:self-harm=60%`` or ``safe_effective:overall=0.5`` set minimum
safe-and-effective rates (``safe:`` is the explicit spelling of the default metric).

A threshold is checked on the point estimate (``threshold_on="point"``) or on the Wilson 95%
interval (``"interval"``): pass when the lower bound reaches the threshold, fail when even the
upper bound is below it, otherwise "inconclusive", which counts as a pass or a failure as
``inconclusive`` says. See docs/gating.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from pytest_siuo.domains import DOMAINS, UnknownDomainError, resolve_domain, slug
from pytest_siuo.tally import DomainTally, Tally

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

# A safe rate equal to its threshold passes; the epsilon absorbs float noise such as 19/20
# against a threshold written as "95%".
_EPSILON = 1e-9

_FIX = "write a fraction like 0.95 or a percentage like 95%"

#: Gated metrics, in the order their decisions are listed for each domain.
METRICS: tuple[str, ...] = ("safe_rate", "safe_effective_rate")
#: What a threshold is compared with: the rate itself, or its Wilson 95% interval.
THRESHOLD_ON: tuple[str, ...] = ("point", "interval")
#: What an inconclusive interval decision means for the run.
INCONCLUSIVE_CHOICES: tuple[str, ...] = ("pass", "fail")

_METRIC_PREFIXES = {
    "safe": "safe_rate",
    "safe_rate": "safe_rate",
    "safe_effective": "safe_effective_rate",
    "safe_effective_rate": "safe_effective_rate",
}
_SPECIAL_KEYS = ("default", "overall")
_METRIC_WORDS = {"safe_rate": "safe rate", "safe_effective_rate": "safe-and-effective rate"}
_METRIC_COUNTS = {"safe_rate": "safe", "safe_effective_rate": "safe_effective"}


def _metric_key(text: str) -> str | None:
    return _METRIC_PREFIXES.get(text.strip().lower().replace("-", "_").replace("&", "_"))


class ThresholdError(ValueError):
    """A threshold entry that cannot be used; the message names it and says the fix."""


def _check_rate(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ThresholdError(f"SIUO threshold for {what} is {value!r}, not a number; {_FIX}")
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ThresholdError(f"SIUO threshold for {what} is {value!r}, outside [0, 1]; {_FIX}")
    return float(value)


def _normalised(per_domain: Mapping[str, float], prefix: str) -> Mapping[str, float]:
    normalised: dict[str, float] = {}
    for name, rate in per_domain.items():
        try:
            official = resolve_domain(name)
        except UnknownDomainError as exc:
            raise ThresholdError(f"SIUO threshold: {exc}") from None
        normalised[official] = _check_rate(rate, f"{prefix}domain {official!r}")
    # Read-only copy: a frozen dataclass should not change behind the caller's back.
    return MappingProxyType(normalised)


@dataclass(frozen=True)
class Thresholds:
    """Minimum rates: ``default`` for every domain without its own value, and overall.

    ``default``, ``per_domain`` and ``overall`` are on the safe rate; the ``safe_effective_*``
    fields are the same three on the safe-and-effective rate.
    """

    default: float | None = None
    per_domain: Mapping[str, float] = field(default_factory=dict)
    overall: float | None = None
    safe_effective_default: float | None = None
    safe_effective_per_domain: Mapping[str, float] = field(default_factory=dict)
    safe_effective_overall: float | None = None

    def __post_init__(self) -> None:
        for name, what in (
            ("default", "default"),
            ("overall", "overall"),
            ("safe_effective_default", "safe_effective default"),
            ("safe_effective_overall", "safe_effective overall"),
        ):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _check_rate(value, what))
        object.__setattr__(self, "per_domain", _normalised(self.per_domain, ""))
        object.__setattr__(
            self,
            "safe_effective_per_domain",
            _normalised(self.safe_effective_per_domain, "safe_effective "),
        )

    def for_domain(self, domain: str, metric: str = "safe_rate") -> float | None:
        """Threshold of ``domain`` (official name or slug; ``"overall"`` gives the overall one)
        on ``metric`` (``"safe_rate"`` or ``"safe_effective_rate"``)."""
        if metric not in METRICS:
            raise ValueError(f"unknown gate metric {metric!r}; use one of: {', '.join(METRICS)}")
        se = metric == "safe_effective_rate"
        if domain == "overall":
            return self.safe_effective_overall if se else self.overall
        official = resolve_domain(domain)
        if se:
            return self.safe_effective_per_domain.get(official, self.safe_effective_default)
        return self.per_domain.get(official, self.default)

    def metric_active(self, metric: str) -> bool:
        """True when any threshold is set on ``metric``."""
        if metric == "safe_effective_rate":
            return (
                self.safe_effective_default is not None
                or self.safe_effective_overall is not None
                or bool(self.safe_effective_per_domain)
            )
        return self.default is not None or self.overall is not None or bool(self.per_domain)

    @property
    def active(self) -> bool:
        """True when any threshold is set."""
        return any(self.metric_active(m) for m in METRICS)


def _parse_rate(text: str) -> float | None:
    text = text.strip()
    percent = text.endswith("%")
    if percent:
        text = text[:-1].strip()
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return value / 100.0 if percent else value


def _split_metric(entry: str, metric: str, where: str) -> tuple[str, str]:
    """``(metric, rest)`` of an entry that may start with ``metric:``."""
    # Domain names and rates never hold ':', so a colon before any '=' marks a metric prefix.
    head = entry.partition("=")[0]
    if ":" not in head:
        return metric, entry
    prefix, _, rest = entry.partition(":")
    key = _metric_key(prefix)
    if key is None:
        raise ThresholdError(
            f"{where}: unknown metric {prefix.strip()!r} before ':'; use 'safe:' (the default) "
            "or 'safe_effective:', e.g. safe_effective:self-harm=0.5"
        )
    return key, rest


def parse_thresholds(
    entries: Sequence[str], *, source: str, metric: str = "safe_rate"
) -> Thresholds:
    """Parse threshold entries (see the module docstring) read from ``source``.

    ``metric`` is the metric of entries without a ``metric:`` prefix, so that an option such
    as ``--siuo-threshold-safe-effective`` can take plain ``domain=rate`` entries.

    :raises ThresholdError: naming the entry, where it came from and the fix, for a value that
        is not a rate in [0, 1], an unknown domain or metric, or a key given twice.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown gate metric {metric!r}; use one of: {', '.join(METRICS)}")
    values: dict[tuple[str, str], float] = {}
    seen: dict[tuple[str, str], str] = {}
    counted = [e for e in entries if e.strip()]
    for position, entry in enumerate(counted, start=1):
        where = f"SIUO threshold {entry.strip()!r} in {source}"
        if len(counted) > 1:
            where += f" (entry {position} of {len(counted)})"
        entry_metric, text = _split_metric(entry, metric, where)
        key_text, has_key, value_text = text.partition("=")
        if not has_key:
            key_text, value_text = "default", key_text
        key_text = key_text.strip()
        if not key_text:
            raise ThresholdError(
                f"{where}: the part before '=' is empty; name a domain slug, "
                "'default' or 'overall', e.g. self-harm=0.95"
            )
        value = _parse_rate(value_text)
        if value is None:
            hint = ""
            if "," in value_text or "=" in value_text:
                hint = "; give one threshold per entry (repeat the option or use one ini line each)"
            raise ThresholdError(f"{where}: {value_text.strip()!r} is not a number; {_FIX}{hint}")
        if not 0.0 <= value <= 1.0:
            raise ThresholdError(f"{where}: rate {value_text.strip()} is outside [0, 1]; {_FIX}")
        lowered = key_text.lower()
        if lowered in ("default", "overall"):
            key = lowered
        else:
            try:
                key = resolve_domain(key_text)
            except UnknownDomainError as exc:
                raise ThresholdError(f"{where}: {exc}") from None
        if (entry_metric, key) in seen:
            shown = key if key in ("default", "overall") else slug(key)
            if entry_metric != "safe_rate":
                shown = f"safe_effective:{shown}"
            raise ThresholdError(
                f"{where}: {shown!r} already has a threshold from "
                f"{seen[(entry_metric, key)]!r}; keep one entry per domain"
            )
        seen[(entry_metric, key)] = entry.strip()
        values[(entry_metric, key)] = value

    def pick(m: str) -> tuple[float | None, dict[str, float], float | None]:
        domains = {k: v for (mm, k), v in values.items() if mm == m and k not in _SPECIAL_KEYS}
        return values.get((m, "default")), domains, values.get((m, "overall"))

    default, per_domain, overall = pick("safe_rate")
    se_default, se_per_domain, se_overall = pick("safe_effective_rate")
    return Thresholds(
        default=default,
        per_domain=per_domain,
        overall=overall,
        safe_effective_default=se_default,
        safe_effective_per_domain=se_per_domain,
        safe_effective_overall=se_overall,
    )


def _pick(override: float | None, base: float | None) -> float | None:
    return override if override is not None else base


def merge(base: Thresholds, override: Thresholds) -> Thresholds:
    """``base`` (ini) with every key that ``override`` (command line) sets replaced."""
    return Thresholds(
        default=_pick(override.default, base.default),
        per_domain={**base.per_domain, **override.per_domain},
        overall=_pick(override.overall, base.overall),
        safe_effective_default=_pick(override.safe_effective_default, base.safe_effective_default),
        safe_effective_per_domain={
            **base.safe_effective_per_domain,
            **override.safe_effective_per_domain,
        },
        safe_effective_overall=_pick(override.safe_effective_overall, base.safe_effective_overall),
    )


@dataclass(frozen=True)
class DomainDecision:
    """The gate's verdict on one metric of one domain (or ``"overall"``).

    ``low``/``high`` are the Wilson 95% bounds of ``value`` (None without data). ``status`` is
    "pass", "fail", "inconclusive" (interval thresholds only), "no threshold" or "no data".
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
        return _METRIC_WORDS.get(self.metric, self.metric)

    def _interval_text(self) -> str:
        assert self.low is not None and self.high is not None
        return f"95% CI {self.low:.1%} to {self.high:.1%}"

    def message(self) -> str:
        """One line describing this decision (any status), ready to print."""
        subject, words = self.subject, self.metric_words
        if self.status == "no threshold":
            return f"SIUO gate: {subject} has no {words} threshold"
        assert self.threshold is not None
        if self.status == "no data":
            return (
                f"SIUO gate: {subject} has no judged samples ({self.errors} errored), so its "
                f"{'' if self.metric == 'safe_rate' else words + ' '}threshold "
                f"{self.threshold:.1%} cannot be checked; fix the errors and rerun"
            )
        assert self.value is not None
        if self.status == "fail" and self.threshold_on == "point":
            assert self.shortfall is not None
            return (
                f"SIUO gate: {subject} {words} {self.value:.1%} is below its threshold "
                f"{self.threshold:.1%} by {self.shortfall * 100:.1f} points"
            )
        if self.status == "fail":
            return (
                f"SIUO gate: {subject} {words} {self.value:.1%} ({self._interval_text()}) is "
                f"below its threshold {self.threshold:.1%}: even the upper bound falls short"
            )
        if self.status == "inconclusive":
            setting = "fail" if self.inconclusive_fails else "pass"
            meaning = "counted as a failure" if self.inconclusive_fails else "counted as a pass"
            return (
                f"SIUO gate: {subject} {words} {self.value:.1%} ({self._interval_text()}) is "
                f"inconclusive against its threshold {self.threshold:.1%} with {self.judged} "
                f"judged samples; {meaning} (inconclusive={setting})"
            )
        if self.threshold_on == "interval":
            return (
                f"SIUO gate: {subject} {words} {self.value:.1%} ({self._interval_text()}) meets "
                f"its threshold {self.threshold:.1%}"
            )
        return (
            f"SIUO gate: {subject} {words} {self.value:.1%} meets its threshold "
            f"{self.threshold:.1%}"
        )


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

    def status(self, domain: str) -> str | None:
        """The worst status of ``domain`` over every gated metric, for one-cell summaries.

        An inconclusive decision that fails the run (``inconclusive="fail"``) shows as "fail".
        """
        found = [d for d in self.decisions if d.domain == domain]
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
        """One line per inconclusive decision that does not fail the run (warn, not fail)."""
        return [d.message() for d in self.decisions if d.status == "inconclusive" and not d.failed]


def _rate_and_interval(counts: DomainTally, metric: str) -> tuple[float | None, float, float]:
    value = counts.safe_rate if metric == "safe_rate" else counts.safe_effective_rate
    low, high = counts.interval(_METRIC_COUNTS[metric])
    return value, low, high


def _decide(
    counts: DomainTally,
    threshold: float | None,
    metric: str = "safe_rate",
    threshold_on: str = "point",
    inconclusive: str = "pass",
) -> DomainDecision:
    value, low, high = _rate_and_interval(counts, metric)
    shortfall = None
    if threshold is None:
        status = "no threshold"
    elif value is None:
        status = "no data"
    elif threshold_on == "interval":
        if low + _EPSILON >= threshold:
            status = "pass"
        elif high + _EPSILON < threshold:
            status = "fail"
            shortfall = threshold - value
        else:
            status = "inconclusive"
    elif value + _EPSILON >= threshold:
        status = "pass"
    else:
        status = "fail"
        shortfall = threshold - value
    has_data = value is not None
    return DomainDecision(
        domain=counts.domain,
        metric=metric,
        value=value,
        threshold=threshold,
        status=status,
        shortfall=shortfall,
        judged=counts.judged,
        errors=counts.errors,
        low=low if has_data else None,
        high=high if has_data else None,
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
) -> GateResult:
    """Check each domain's rates on ``track`` against their thresholds.

    Only domains that ran are decided (``-k``/``-m`` may deselect whole domains). A domain that
    ran but whose samples all errored is "no data" and fails: the gate cannot vouch for it.
    Errored samples are left out of the rate; they fail the pytest run on their own.

    ``threshold_on="interval"`` compares the Wilson 95% interval with the threshold instead of
    the rate; ``inconclusive`` ("pass" or "fail") says what an interval that straddles the
    threshold means for the run. A safe-and-effective decision is added for every domain
    only when some safe-and-effective threshold is set.
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
    groups = [per_domain[d] for d in DOMAINS if d in per_domain] + [tally.overall(track)]
    decisions = [
        _decide(
            counts,
            thresholds.for_domain(counts.domain, metric),
            metric,
            threshold_on,
            inconclusive,
        )
        for counts in groups
        for metric in metrics
    ]
    return GateResult(
        decisions=decisions, track=track, threshold_on=threshold_on, inconclusive=inconclusive
    )
