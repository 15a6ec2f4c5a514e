"""Rate thresholds per domain: parsed from options and ini lines, merged, looked up.

Thresholds come from ``--siuo-threshold`` entries and the ``siuo_thresholds`` ini lines, one
threshold per entry: ``0.8`` or ``default=0.8`` for every domain, ``self-harm=0.95`` (slug or
official name) for one domain, ``overall=0.85`` for the whole track; rates may be written as
fractions or percentages (``95%``). The command line overrides the ini file key by key.

An entry is on the safe rate unless it starts with a metric prefix: ``safe_effective:0.5``,
``safe_effective:self-harm=60%`` or ``safe_effective:overall=0.5`` set minimum
safe-and-effective rates (``safe:`` is the explicit spelling of the default metric). With
``--siuo-controls``, ``image_aware:`` entries set minimum image-aware rates and
``over_refusal:`` entries set *maximum* over-refusal rates (see docs/controls.md).

This is configuration only; :mod:`pytest_siuo.gate` decides a tally against it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pytest_siuo.domains import UnknownDomainError, resolve_domain, slug

__all__ = [
    "ALL_METRICS",
    "CONTROL_METRICS",
    "EPSILON",
    "INCONCLUSIVE_CHOICES",
    "MAXIMUM_METRICS",
    "METRICS",
    "METRIC_PREFIX",
    "METRIC_WORDS",
    "THRESHOLD_ON",
    "Limits",
    "ThresholdError",
    "Thresholds",
    "merge",
    "parse_thresholds",
]

# A safe rate equal to its threshold passes; the epsilon absorbs float noise such as 19/20
# against a threshold written as "95%".
EPSILON = 1e-9

_FIX = "write a fraction like 0.95 or a percentage like 95%"

#: Gated metrics of the tally, in the order their decisions are listed for each domain.
METRICS: tuple[str, ...] = ("safe_rate", "safe_effective_rate")
#: Gated metrics of the modality controls (--siuo-controls, generation track only).
CONTROL_METRICS: tuple[str, ...] = ("image_aware_rate", "over_refusal_rate")
ALL_METRICS: tuple[str, ...] = METRICS + CONTROL_METRICS
#: Metrics whose threshold is a maximum: a higher over-refusal rate is worse.
MAXIMUM_METRICS: frozenset[str] = frozenset({"over_refusal_rate"})
#: What a threshold is compared with: the rate itself, or its Wilson 95% interval.
THRESHOLD_ON: tuple[str, ...] = ("point", "interval")
#: What an inconclusive interval decision means for the run.
INCONCLUSIVE_CHOICES: tuple[str, ...] = ("pass", "fail")

_METRIC_PREFIXES = {
    "safe": "safe_rate",
    "safe_rate": "safe_rate",
    "safe_effective": "safe_effective_rate",
    "safe_effective_rate": "safe_effective_rate",
    "image_aware": "image_aware_rate",
    "image_aware_rate": "image_aware_rate",
    "over_refusal": "over_refusal_rate",
    "over_refusal_rate": "over_refusal_rate",
}
_SPECIAL_KEYS = ("default", "overall")
METRIC_WORDS = {
    "safe_rate": "safe rate",
    "safe_effective_rate": "safe-and-effective rate",
    "image_aware_rate": "image-aware rate",
    "over_refusal_rate": "over-refusal rate",
}
#: The prefix of each metric's entries, as users write them (the safe rate needs none).
METRIC_PREFIX = {
    "safe_rate": "",
    "safe_effective_rate": "safe_effective:",
    "image_aware_rate": "image_aware:",
    "over_refusal_rate": "over_refusal:",
}
_PREFIX_LIST = "'safe:' (the default), 'safe_effective:', 'image_aware:' or 'over_refusal:'"


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
class Limits:
    """Thresholds of one control metric: ``default`` for every domain without its own value,
    ``per_domain`` and ``overall``."""

    default: float | None = None
    per_domain: Mapping[str, float] = field(default_factory=dict)
    overall: float | None = None

    def __post_init__(self) -> None:
        for name in ("default", "overall"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _check_rate(value, name))
        object.__setattr__(self, "per_domain", _normalised(self.per_domain, ""))

    @property
    def active(self) -> bool:
        return self.default is not None or self.overall is not None or bool(self.per_domain)

    def to_json(self) -> dict[str, Any]:
        return {"default": self.default, "overall": self.overall, "domains": dict(self.per_domain)}


def _merge_limits(base: Limits | None, override: Limits | None) -> Limits:
    base, override = base or Limits(), override or Limits()
    return Limits(
        default=_pick(override.default, base.default),
        per_domain={**base.per_domain, **override.per_domain},
        overall=_pick(override.overall, base.overall),
    )


@dataclass(frozen=True)
class Thresholds:
    """Minimum rates: ``default`` for every domain without its own value, and overall.

    ``default``, ``per_domain`` and ``overall`` are on the safe rate; the ``safe_effective_*``
    fields are the same three on the safe-and-effective rate. ``controls`` holds the
    :class:`Limits` of the control metrics that have any (``image_aware_rate``, a minimum;
    ``over_refusal_rate``, a maximum).
    """

    default: float | None = None
    per_domain: Mapping[str, float] = field(default_factory=dict)
    overall: float | None = None
    safe_effective_default: float | None = None
    safe_effective_per_domain: Mapping[str, float] = field(default_factory=dict)
    safe_effective_overall: float | None = None
    controls: Mapping[str, Limits] = field(default_factory=dict)

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
        unknown = sorted(set(self.controls) - set(CONTROL_METRICS))
        if unknown:
            raise ValueError(f"unknown control metric(s) {unknown}; use: {CONTROL_METRICS}")
        # Only metrics with a threshold are kept, so equal settings give equal objects.
        kept = {m: self.controls[m] for m in CONTROL_METRICS if m in self.controls}
        object.__setattr__(
            self, "controls", MappingProxyType({m: v for m, v in kept.items() if v.active})
        )

    def for_domain(self, domain: str, metric: str = "safe_rate") -> float | None:
        """Threshold of ``domain`` (official name or slug; ``"overall"`` gives the overall one)
        on ``metric`` (one of :data:`ALL_METRICS`)."""
        if metric not in ALL_METRICS:
            raise ValueError(
                f"unknown gate metric {metric!r}; use one of: {', '.join(ALL_METRICS)}"
            )
        if metric in CONTROL_METRICS:
            limits = self.controls.get(metric)
            if limits is None:
                return None
            if domain == "overall":
                return limits.overall
            return limits.per_domain.get(resolve_domain(domain), limits.default)
        se = metric == "safe_effective_rate"
        if domain == "overall":
            return self.safe_effective_overall if se else self.overall
        official = resolve_domain(domain)
        if se:
            return self.safe_effective_per_domain.get(official, self.safe_effective_default)
        return self.per_domain.get(official, self.default)

    def metric_active(self, metric: str) -> bool:
        """True when any threshold is set on ``metric``."""
        if metric in CONTROL_METRICS:
            return metric in self.controls
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
        return any(self.metric_active(m) for m in ALL_METRICS)

    @property
    def control_metrics(self) -> tuple[str, ...]:
        """The control metrics that have a threshold (they need --siuo-controls)."""
        return tuple(m for m in CONTROL_METRICS if m in self.controls)

    def to_json(self) -> dict[str, Any]:
        """The thresholds as the report's ``settings.thresholds`` holds them.

        Control metrics appear only when they have a threshold: a run without them keeps the
        report it had.
        """
        return {
            "default": self.default,
            "overall": self.overall,
            "domains": dict(self.per_domain),
            "safe_effective": {
                "default": self.safe_effective_default,
                "overall": self.safe_effective_overall,
                "domains": dict(self.safe_effective_per_domain),
            },
            **{m.removesuffix("_rate"): lim.to_json() for m, lim in self.controls.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Thresholds:
        """The inverse of :meth:`to_json` (a report's ``settings.thresholds``).

        :raises ThresholdError: for a value that is not a rate or an unknown domain.
        """

        def part(key: str) -> Mapping[str, Any]:
            value = data.get(key)
            return value if isinstance(value, Mapping) else {}

        def limits(entry: Mapping[str, Any]) -> Limits:
            return Limits(
                default=entry.get("default"),
                overall=entry.get("overall"),
                per_domain=dict(entry.get("domains") or {}),
            )

        se = part("safe_effective")
        controls = {m: limits(part(m.removesuffix("_rate"))) for m in CONTROL_METRICS}
        return cls(
            default=data.get("default"),
            overall=data.get("overall"),
            per_domain=dict(data.get("domains") or {}),
            safe_effective_default=se.get("default"),
            safe_effective_overall=se.get("overall"),
            safe_effective_per_domain=dict(se.get("domains") or {}),
            controls=controls,
        )


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
            f"{where}: unknown metric {prefix.strip()!r} before ':'; use {_PREFIX_LIST}, "
            "e.g. safe_effective:self-harm=0.5"
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
    if metric not in ALL_METRICS:
        raise ValueError(f"unknown gate metric {metric!r}; use one of: {', '.join(ALL_METRICS)}")
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
            shown = METRIC_PREFIX[entry_metric] + shown
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
    controls = {}
    for m in CONTROL_METRICS:
        c_default, c_per_domain, c_overall = pick(m)
        controls[m] = Limits(default=c_default, per_domain=c_per_domain, overall=c_overall)
    return Thresholds(
        default=default,
        per_domain=per_domain,
        overall=overall,
        safe_effective_default=se_default,
        safe_effective_per_domain=se_per_domain,
        safe_effective_overall=se_overall,
        controls=controls,
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
        controls={
            m: _merge_limits(base.controls.get(m), override.controls.get(m))
            for m in CONTROL_METRICS
        },
    )
