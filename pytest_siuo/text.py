"""Small text helpers shared by every renderer: one-line excerpts and percentages."""

from __future__ import annotations

import re

__all__ = ["cause_of", "flat", "head_and_tail", "pct", "shorten", "visible"]

# C0 and C1 control characters (ESC starts every terminal escape sequence), DEL, and the
# bidirectional overrides that reorder what a terminal shows; newline and tab are kept.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def flat(text: object) -> str:
    """``text`` on one line: every run of whitespace (newlines too) becomes one space."""
    return " ".join(str(text).split())


def cause_of(exc: BaseException, limit: int = 500) -> str:
    """An exception as the one line a user reads: its type and the first line of its message."""
    text = f"{type(exc).__name__}: {exc}".strip()
    return shorten((text.splitlines() or [type(exc).__name__])[0], limit)


def shorten(text: object, limit: int = 300, *, one_line: bool = True) -> str:
    """``text`` cut to at most ``limit`` characters, ending in "…" when cut (flattened to one
    line unless ``one_line`` is false)."""
    s = flat(text) if one_line else str(text)
    return s if len(s) <= limit else s[: max(0, limit - 1)].rstrip() + "…"


def visible(text: str) -> str:
    """``text`` with control characters and escape sequences shown escaped (``\\x1b``), so
    that an answer shown in a terminal cannot clear the screen, fake a line or set the window
    title. For the terminal and pytest's messages; reports keep the raw text."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def head_and_tail(text: object, width: int = 90) -> str:
    """A long reply shown by its start and its end (where a judge's verdict usually is), each
    quoted; a short one quoted whole; a non-string by its repr."""
    if not isinstance(text, str):
        return repr(text)
    s = flat(text)
    if len(s) <= 2 * width:
        return repr(s)
    return f"{s[:width]!r} … {s[-width:]!r}"


def pct(value: object, *, digits: int = 1, sign: bool = False, none: str = "-") -> str:
    """A fraction as a percentage number without the % sign (``0.953`` -> ``95.3``); ``none``
    for a missing value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return none
    return f"{value * 100:{'+' if sign else ''}.{digits}f}"
