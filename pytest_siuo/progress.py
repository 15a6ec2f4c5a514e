"""Progress lines for runs that take a while: samples done of the total, calls in flight,
failed and rate-limited calls, tokens, elapsed time and an ETA.

Pure: the plugin sums the counts of this process's evaluators and of every xdist worker (sent
with their test reports) and writes the line; this module only adds and formats.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["ProgressMeter", "progress_line", "sum_counts"]


def sum_counts(parts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Key-by-key sums of evaluator progress counts (``Evaluator.progress()``)."""
    total: dict[str, int] = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, int):
                total[key] = total.get(key, 0) + value
    return total


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def progress_line(counts: Mapping[str, int], total: int, elapsed: float) -> str:
    """``SIUO progress: 40/167 samples done, model 3 in flight (52 calls), judge 12 in flight
    (180 calls), 2 failed calls (1 rate-limited), 12,345 tokens, 1m05s elapsed, ETA 2m40s``."""
    done = counts.get("done", 0)
    parts = [f"{done}/{total} samples done" if total else f"{done} samples done"]
    for role in ("model", "judge"):
        calls = counts.get(f"{role}_calls", 0)
        cached = counts.get(f"{role}_cached", 0)
        if calls or cached or counts.get(f"{role}_in_flight", 0):
            parts.append(
                f"{role} {counts.get(f'{role}_in_flight', 0)} in flight ({calls} calls"
                + (f", {cached} cached" if cached else "")
                + ")"
            )
    failed = counts.get("model_failures", 0) + counts.get("judge_failures", 0)
    limited = counts.get("model_rate_limited", 0) + counts.get("judge_rate_limited", 0)
    if failed:
        parts.append(f"{failed} failed calls" + (f" ({limited} rate-limited)" if limited else ""))
    tokens = counts.get("model_tokens", 0) + counts.get("judge_tokens", 0)
    if tokens:
        parts.append(f"{tokens:,} tokens")
    parts.append(f"{_duration(elapsed)} elapsed")
    if total and 0 < done < total:
        parts.append(f"ETA {_duration(elapsed / done * (total - done))}")
    return "SIUO progress: " + ", ".join(parts)


class ProgressMeter:
    """Says when the next line is due: the first after ``interval`` seconds (short runs print
    none), then one every ``interval`` seconds; never with an interval of 0."""

    def __init__(self, interval: float, start: float) -> None:
        self.interval = interval
        self.start = start
        self._next = start + interval

    def due(self, now: float) -> bool:
        if self.interval <= 0 or now < self._next:
            return False
        self._next = now + self.interval
        return True
