"""Atomic file writes: a report, answers file or baseline is either whole or absent.

Every output is written to a temporary file in the target folder and renamed into place, so
an interrupted or failed run never leaves half a file behind (and never replaces a good old one
with a broken new one).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as UTF-8, creating the folder; raises OSError."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes the file private (0600); an output is meant to be shared.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def probe_writable(folder: Path) -> None:
    """Create ``folder`` if needed and check a file can be made in it; raises OSError."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(prefix=".siuo-probe-", dir=folder)
    os.close(fd)
    os.unlink(probe)
