"""Content-addressed disk cache for model answers and judge verdicts.

A key is the SHA-256 of a canonical JSON of everything that determines the value (endpoint id,
sampling parameters, prompt, image hash, answer index; judge id and prompt version). Entries are
written to a temporary file and renamed into place, so concurrent pytest-xdist workers and an
interrupted run never leave a torn entry: a reader sees the whole entry or none.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import CacheError as CacheError  # re-exported: raised here
from .files import probe_writable

FORMAT = 1


class CacheMiss(Exception):
    """``--siuo-cache=replay`` and an entry is missing: never call a model in replay mode."""


def make_key(parts: dict[str, Any]) -> str:
    blob = json.dumps(
        {"format": FORMAT, **parts}, sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class Cache:
    """``mode``: on (read and write), off (neither), refresh (write only), replay (read only,
    a miss is an error)."""

    def __init__(self, root: Path, mode: str = "on") -> None:
        self.root = Path(root)
        self.mode = mode
        self.hits = 0
        self.misses = 0
        self.writes = 0

    @property
    def reads(self) -> bool:
        return self.mode in ("on", "replay")

    @property
    def writes_enabled(self) -> bool:
        return self.mode in ("on", "refresh")

    def check_writable(self) -> None:
        """Fail at start, not after an hour of calls, when the folder cannot take entries."""
        if not self.writes_enabled:
            return
        try:
            probe_writable(self.root)
        except OSError as exc:
            raise CacheError(
                f"cache folder {self.root} is not writable ({exc.strerror or exc}); choose "
                "another with --siuo-cache-dir=PATH, or run without a cache with --siuo-cache=off"
            ) from None

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str, *, what: str = "entry") -> dict[str, Any] | None:
        if not self.reads:
            return None
        path = self._path(key)
        try:
            with open(path, encoding="utf-8") as f:
                value = json.load(f)
        except FileNotFoundError:
            value = None
        except (OSError, ValueError):
            value = None  # unreadable entry (should not happen with atomic writes): recompute
        if not isinstance(value, dict):
            self.misses += 1
            if self.mode == "replay":
                raise CacheMiss(
                    f"--siuo-cache=replay: no cached {what} (key {key[:12]}) in "
                    f"{self.root}; run once with --siuo-cache=on to record it"
                )
            return None
        self.hits += 1
        return value

    def drop(self, key: str) -> None:
        """Remove an entry found malformed, so that it is asked again and written anew."""
        self.hits -= 1
        self.misses += 1
        with contextlib.suppress(OSError):
            self._path(key).unlink()

    def put(self, key: str, value: dict[str, Any]) -> None:
        if not self.writes_enabled:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:8]}-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(value, f, ensure_ascii=False, separators=(",", ":"))
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self.writes += 1
