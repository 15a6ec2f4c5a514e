"""The source distribution can run its own tests: it carries every file they read."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Folders the test suite reads (tests, the docs test_docs checks, the example project it runs,
#: the benchmarks and CI scripts it checks).
READ_BY_TESTS = ("tests", "docs", "example_project", "bench", ".ci")
_SKIP = (".pytest_cache", "__pycache__", ".siuo", ".mypy_cache", ".ruff_cache")


def _project_files() -> set[str]:
    found = {"README.md", "CHANGELOG.md", "pyproject.toml"}
    for top in READ_BY_TESTS:
        for path in (ROOT / top).rglob("*"):
            rel = path.relative_to(ROOT)
            if path.is_file() and not any(p in _SKIP or p.endswith(".pyc") for p in rel.parts):
                found.add(rel.as_posix())
    return found


def test_the_sdist_carries_what_its_tests_read(tmp_path: Path) -> None:
    code = (
        "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    name = proc.stdout.strip().splitlines()[-1]
    with tarfile.open(tmp_path / name) as tar:
        members = {
            m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile() and "/" in m.name
        }
    missing = sorted(_project_files() - members)
    assert not missing, f"MANIFEST.in leaves out files the tests read: {missing[:20]}"
    # And nothing of a run: no caches, no reports, no SIUO data.
    assert not [m for m in members if any(p in m.split("/") for p in _SKIP)]
