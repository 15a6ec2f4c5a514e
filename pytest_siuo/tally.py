"""Per-domain counts of SIUO case records, the input of the gate and of every report.

The controller feeds one case record per evaluated sample (forwarded on the pytest report, so the
same code runs with and without xdist). Rates exclude errored samples from the denominator: an
error (endpoint or judge down) says nothing about the model's safety, so it is neither safe nor
unsafe, and its count is always shown next to the rates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_siuo.domains import DOMAINS, UnknownDomainError, resolve_domain
from pytest_siuo.stats import wilson_interval

__all__ = ["OUTCOMES", "TRACKS", "DomainTally", "RecordError", "Tally"]

#: Tracks in report order: generation (judged answers) and multiple choice.
TRACKS: tuple[str, ...] = ("gen", "mcqa")
#: Possible outcomes of one sample after the majority vote.
OUTCOMES: tuple[str, ...] = ("safe", "unsafe", "no_answer", "error")

_METRICS = {
    "safe": "safe",
    "safe_rate": "safe",
    "effective": "effective",
    "effective_rate": "effective",
    "safe_effective": "safe_effective",
    "safe_effective_rate": "safe_effective",
}


class RecordError(ValueError):
    """A case record that lacks a field or carries a value the tally cannot count."""


@dataclass
class DomainTally:
    """Counts for one domain (official name) or for ``"overall"``.

    ``safe``, ``unsafe``, ``no_answer`` and ``errors`` partition ``total`` by outcome.
    ``graded`` counts judged samples that carry an effectiveness grade (none on the MCQA track),
    so that a track without grades shows no effectiveness rate instead of 0%.
    """

    domain: str
    total: int = 0
    safe: int = 0
    unsafe: int = 0
    no_answer: int = 0
    errors: int = 0
    effective: int = 0
    safe_effective: int = 0
    graded: int = 0

    @property
    def judged(self) -> int:
        """Samples with a verdict: the denominator of every rate."""
        return self.total - self.errors

    @property
    def safe_rate(self) -> float | None:
        return self.safe / self.judged if self.judged else None

    @property
    def effective_rate(self) -> float | None:
        return self.effective / self.judged if self.judged and self.graded else None

    @property
    def safe_effective_rate(self) -> float | None:
        return self.safe_effective / self.judged if self.judged and self.graded else None

    def interval(self, metric: str = "safe") -> tuple[float, float]:
        """Wilson 95% interval of ``metric`` (``safe``, ``effective`` or ``safe_effective``)."""
        key = _METRICS.get(metric)
        if key is None:
            raise ValueError(
                f"unknown metric {metric!r}; use one of: safe, effective, safe_effective"
            )
        successes: int = getattr(self, key)
        return wilson_interval(successes, self.judged)

    def _count(self, record: Mapping[str, Any]) -> None:
        self.total += 1
        outcome = record["outcome"]
        if outcome == "error":
            self.errors += 1
            return
        if outcome == "safe":
            self.safe += 1
        elif outcome == "unsafe":
            self.unsafe += 1
        else:
            self.no_answer += 1
        if record.get("effective") is not None:
            self.graded += 1
        if record.get("effective") is True:
            self.effective += 1
        if record.get("safe_effective") is True:
            self.safe_effective += 1


def _natural_key(text: str) -> tuple[tuple[int, int, str], ...]:
    # "self-harm-2" sorts before "self-harm-10", as a reader expects.
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", text)
        if part
    )


def _track_key(track: str) -> tuple[int, str]:
    return (TRACKS.index(track), "") if track in TRACKS else (len(TRACKS), track)


def _checked(record: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``record`` with its domain normalised, or :class:`RecordError`."""
    if not isinstance(record, Mapping):
        raise RecordError(f"a SIUO case record must be a dict, got {type(record).__name__}")
    case_id = record.get("case_id")
    if not isinstance(case_id, str) or not case_id:
        raise RecordError(
            f"SIUO case record has no usable 'case_id' (got {case_id!r}); "
            "set it to '<domain-slug>-<question_id>'"
        )
    where = f"SIUO case record {case_id!r}"
    track = record.get("track")
    if track not in TRACKS:
        raise RecordError(f"{where}: field 'track' is {track!r}; use one of: {', '.join(TRACKS)}")
    outcome = record.get("outcome")
    if outcome not in OUTCOMES:
        raise RecordError(
            f"{where}: field 'outcome' is {outcome!r}; use one of: {', '.join(OUTCOMES)}"
        )
    domain = record.get("domain")
    if not isinstance(domain, str):
        raise RecordError(f"{where}: field 'domain' is {domain!r}; use an official SIUO domain")
    try:
        official = resolve_domain(domain)
    except UnknownDomainError as exc:
        raise RecordError(f"{where}: field 'domain': {exc}") from None
    for field in ("effective", "safe_effective"):
        value = record.get(field)
        if value is not None and not isinstance(value, bool):
            raise RecordError(f"{where}: field {field!r} is {value!r}; use true, false or null")
    copy = dict(record)
    copy["domain"] = official
    return copy


class Tally:
    """Case records keyed by ``(track, case_id)``, counted per track and domain.

    Adding the same case twice (e.g. once from the shipped suite and once from a user test
    that parametrizes over the same sample) counts it once; the later record wins.
    """

    def __init__(self) -> None:
        self._records: dict[tuple[str, str], dict[str, Any]] = {}

    def add(self, record: Mapping[str, Any]) -> None:
        """Count ``record``; :class:`RecordError` names the case and field if it is unusable."""
        checked = _checked(record)
        self._records[(checked["track"], checked["case_id"])] = checked

    def __len__(self) -> int:
        return len(self._records)

    @property
    def tracks(self) -> list[str]:
        """Tracks with at least one record, ``gen`` before ``mcqa``."""
        return sorted({track for track, _ in self._records}, key=_track_key)

    def records(self, track: str | None = None) -> list[dict[str, Any]]:
        """Records of ``track`` (all tracks if None) by track, DOMAINS order, then case id."""
        chosen = [r for (t, _), r in self._records.items() if track is None or t == track]
        return sorted(
            chosen,
            key=lambda r: (
                _track_key(r["track"]),
                DOMAINS.index(r["domain"]),
                _natural_key(r["case_id"]),
            ),
        )

    def domains(self, track: str = "gen") -> dict[str, DomainTally]:
        """Per-domain counts in DOMAINS order, only for domains with at least one sample."""
        by_domain: dict[str, DomainTally] = {}
        for record in self.records(track):
            name = record["domain"]
            if name not in by_domain:
                by_domain[name] = DomainTally(name)
            by_domain[name]._count(record)
        return {d: by_domain[d] for d in DOMAINS if d in by_domain}

    def overall(self, track: str = "gen") -> DomainTally:
        """Counts over every domain of ``track``."""
        total = DomainTally("overall")
        for record in self.records(track):
            total._count(record)
        return total
