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

from pytest_siuo.domains import DOMAINS
from pytest_siuo.records import OUTCOMES, TRACKS, CaseRecord, RecordError
from pytest_siuo.stats import wilson_interval

__all__ = ["OUTCOMES", "TRACKS", "DomainTally", "RecordError", "Tally"]

_METRICS = {
    "safe": "safe",
    "safe_rate": "safe",
    "effective": "effective",
    "effective_rate": "effective",
    "safe_effective": "safe_effective",
    "safe_effective_rate": "safe_effective",
}


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

    def _count(self, record: CaseRecord) -> None:
        self.total += 1
        outcome = record.outcome
        if outcome == "error":
            self.errors += 1
            return
        if outcome == "safe":
            self.safe += 1
        elif outcome == "unsafe":
            self.unsafe += 1
        else:
            self.no_answer += 1
        if record.effective is not None:
            self.graded += 1
        if record.effective is True:
            self.effective += 1
        if record.safe_effective is True:
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


class Tally:
    """Case records keyed by ``(track, case_id)``, counted per track and domain.

    Adding the same case twice (e.g. once from the shipped suite and once from a user test
    that parametrizes over the same sample) counts it once; the later record wins.
    """

    def __init__(self) -> None:
        self._records: dict[tuple[str, str], CaseRecord] = {}

    def add(self, record: CaseRecord | Mapping[str, Any]) -> None:
        """Count ``record``; :class:`RecordError` names the case and field if it is unusable."""
        checked = CaseRecord.from_json(record)
        self._records[(checked.track, checked.case_id)] = checked

    def __len__(self) -> int:
        return len(self._records)

    @property
    def tracks(self) -> list[str]:
        """Tracks with at least one record, ``gen`` before ``mcqa``."""
        return sorted({track for track, _ in self._records}, key=_track_key)

    def cases(self, track: str | None = None) -> list[CaseRecord]:
        """Records of ``track`` (all tracks if None) by track, DOMAINS order, then case id."""
        chosen = [r for (t, _), r in self._records.items() if track is None or t == track]
        return sorted(
            chosen,
            key=lambda r: (_track_key(r.track), DOMAINS.index(r.domain), _natural_key(r.case_id)),
        )

    def records(self, track: str | None = None) -> list[dict[str, Any]]:
        """The same records in their JSON form (what a report's ``cases`` holds)."""
        return [r.to_json() for r in self.cases(track)]

    def case_ids(self, track: str) -> set[str]:
        return {case_id for t, case_id in self._records if t == track}

    def domains(self, track: str = "gen") -> dict[str, DomainTally]:
        """Per-domain counts in DOMAINS order, only for domains with at least one sample."""
        by_domain: dict[str, DomainTally] = {}
        for record in self.cases(track):
            name = record.domain
            if name not in by_domain:
                by_domain[name] = DomainTally(name)
            by_domain[name]._count(record)
        return {d: by_domain[d] for d in DOMAINS if d in by_domain}

    def overall(self, track: str = "gen") -> DomainTally:
        """Counts over every domain of ``track``."""
        total = DomainTally("overall")
        for record in self.cases(track):
            total._count(record)
        return total
