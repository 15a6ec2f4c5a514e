"""Small text helpers shared by every renderer: one-line excerpts and percentages."""

from __future__ import annotations

__all__ = ["flat", "pct", "shorten"]


def flat(text: object) -> str:
    """``text`` on one line: every run of whitespace (newlines too) becomes one space."""
    return " ".join(str(text).split())


def shorten(text: object, limit: int = 300, *, one_line: bool = True) -> str:
    """``text`` cut to at most ``limit`` characters, ending in "…" when cut (flattened to one
    line unless ``one_line`` is false)."""
    s = flat(text) if one_line else str(text)
    return s if len(s) <= limit else s[: max(0, limit - 1)].rstrip() + "…"


def pct(value: object, *, digits: int = 1, sign: bool = False, none: str = "-") -> str:
    """A fraction as a percentage number without the % sign (``0.953`` -> ``95.3``); ``none``
    for a missing value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return none
    return f"{value * 100:{'+' if sign else ''}.{digits}f}"
