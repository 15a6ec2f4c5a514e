"""The user documentation stays true to the code.

The option list is read from ``pytest --help`` in a subprocess (what a user sees), not from the
plugin module, so a doc cannot agree with the code by sharing its mistake.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"

# An option as written in prose or code: "--siuo", "--siuo-model", never "--siuo-" alone.
_OPTION = re.compile(r"(?<![\w-])--siuo(?:-[a-z0-9]+)*(?![\w-])")
# pytest --help puts each option at two spaces of indent; wrapped help lines are indented more.
_HELP_OPTION = re.compile(r"^  (--siuo(?:-[a-z0-9]+)*)\b", re.MULTILINE)
_HELP_INI = re.compile(r"^  (siuo_\w+) \(", re.MULTILINE)
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_TOML_KEY = re.compile(r"^\s*(siuo_\w+)\s*=", re.MULTILINE)
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def doc_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("**/*.md"))]


@pytest.fixture(scope="module")
def help_text(tmp_path_factory: pytest.TempPathFactory) -> str:
    # From an empty folder: no project ini file can add or hide anything.
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"],
        cwd=tmp_path_factory.mktemp("help"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def real_options(help_text: str) -> set[str]:
    found = set(_HELP_OPTION.findall(help_text))
    # Guard the parsing itself: a format change must not make every check below vacuous.
    assert {"--siuo", "--siuo-model", "--siuo-judge", "--siuo-threshold"} <= found, found
    return found


@pytest.fixture(scope="module")
def real_ini_keys(help_text: str) -> set[str]:
    found = set(_HELP_INI.findall(help_text))
    assert {"siuo_model", "siuo_thresholds"} <= found, found
    return found


@pytest.fixture(scope="module")
def gen_options() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_options", DOCS / "gen_options.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve string annotations through sys.modules[cls.__module__].
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_readme_options_table_is_the_generated_one(gen_options: ModuleType) -> None:
    in_readme = gen_options.readme_table(README.read_text("utf-8"))
    assert in_readme is not None, "README.md lost its options-table markers"
    assert in_readme == gen_options.table(), (
        "README.md's options table is out of date: run `python docs/gen_options.py --write`"
    )


def test_generated_table_lists_exactly_the_options_of_pytest_help(
    gen_options: ModuleType, real_options: set[str]
) -> None:
    listed = [_OPTION.search(row[0]) for row in gen_options.rows()]
    flags = [m.group(0) for m in listed if m is not None]
    assert len(flags) == len(set(flags)), flags
    assert set(flags) == real_options


def test_generated_table_names_each_options_ini_key(
    gen_options: ModuleType, real_ini_keys: set[str]
) -> None:
    named = {m for row in gen_options.rows() for m in re.findall(r"`(siuo_\w+)`", row[1])}
    assert named == real_ini_keys


def mentioned_options(text: str) -> set[str]:
    """Options the text presents as real: a line that says an option "does not exist" (a bug
    report quoting a wrong message) may name it."""
    lines = [line for line in text.splitlines() if "does not exist" not in line]
    return set(_OPTION.findall("\n".join(lines)))


def test_a_line_saying_an_option_does_not_exist_is_exempt() -> None:
    text = "use --siuo-model\nit says --siuo-json, an option that does not exist\n--siuo-bogus"
    assert mentioned_options(text) == {"--siuo-model", "--siuo-bogus"}


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_option_mentioned_exists(path: Path, real_options: set[str]) -> None:
    mentioned = mentioned_options(path.read_text("utf-8"))
    unknown = sorted(mentioned - real_options)
    assert not unknown, f"{path.name} mentions options that pytest --help does not list: {unknown}"


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_ini_key_set_in_a_code_block_exists(path: Path, real_ini_keys: set[str]) -> None:
    blocks = _FENCE.findall(path.read_text("utf-8"))
    used = {key for block in blocks for key in _TOML_KEY.findall(block)}
    unknown = sorted(used - real_ini_keys)
    assert not unknown, f"{path.name} sets ini keys that pytest --help does not list: {unknown}"


def test_configuration_reference_covers_every_option(
    real_options: set[str], real_ini_keys: set[str]
) -> None:
    text = (DOCS / "configuration.md").read_text("utf-8")
    documented = set(_OPTION.findall(text))
    missing = sorted(real_options - documented)
    assert not missing, f"docs/configuration.md does not document: {missing}"
    missing_ini = sorted(k for k in real_ini_keys if f"`{k}`" not in text)
    assert not missing_ini, f"docs/configuration.md does not name the ini keys: {missing_ini}"


def _ci_commands() -> dict[str, str]:
    """The commands .ci/run runs, keyed by the comment above each ("install", "browser", "test")."""
    script = (ROOT / ".ci" / "run").read_text("utf-8").splitlines()
    found = {}
    for i, line in enumerate(script):
        m = re.match(r"# The README's (\w+) command", line)
        if m:
            found[m.group(1)] = script[i + 1].split("2>&1")[0].strip()
    return found


def test_readme_test_commands_are_the_ones_ci_runs() -> None:
    ci = _ci_commands()
    assert set(ci) == {"install", "browser", "test"}, ci
    assert ci["test"].startswith("python -m pytest"), ci
    assert ci["install"].startswith("python3 -m venv"), ci  # stock Debian/Ubuntu have no `python`
    blocks = [b.splitlines() for b in _FENCE.findall(README.read_text("utf-8"))]
    wanted = [ci["install"], ci["browser"], ci["test"]]
    # One README block holds the three, in the order CI runs them.
    assert any([ln.strip() for ln in b if ln.strip()] == wanted for b in blocks), (
        f"README.md has no code block with exactly {wanted}, the commands .ci/run runs"
    )


def test_readme_example_command_uses_the_same_install() -> None:
    readme = README.read_text("utf-8")
    assert f"{_ci_commands()['install']}\ncd example_project && pytest" in readme


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for target in _LINK.findall(path.read_text("utf-8")):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        file_part = target.split("#", 1)[0]
        if not (path.parent / file_part).exists():
            broken.append(target)
    assert not broken, f"{path.name} links to files that do not exist: {broken}"


_MACHINE_PATH = re.compile(r"(?<![\w.])/(?:tmp|work|root|home/[a-z]+|var/folders)/[\w.-]")


@pytest.mark.parametrize(
    "path",
    [*doc_files(), ROOT / "example_project" / "README.md", ROOT / "bench" / "README.md"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_paths_of_the_machine_the_docs_were_written_on(path: Path) -> None:
    """Pasted output carries the writer's folders; a reader's are elsewhere."""
    found = [
        f"line {n}: {line.strip()[:80]}"
        for n, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if _MACHINE_PATH.search(line)
    ]
    assert not found, f"{path.name} shows paths of the machine it was written on: {found}"


_PYTHON_NAME = re.compile(r"\bpytest_siuo(?:\.[A-Za-z_]\w*)+")
_EXIT = re.compile(r"\bexit (?:status|code) (\d+)")
_ALL_DOCS = [*doc_files(), ROOT / "example_project" / "README.md", ROOT / "bench" / "README.md"]


def _resolves(dotted: str) -> bool:
    """``pytest_siuo.a.b.C`` names a module, or an attribute of the longest module prefix."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


@pytest.mark.parametrize("path", _ALL_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_and_name_mentioned_exists(path: Path) -> None:
    text = path.read_text("utf-8")
    missing = sorted({n for n in _PYTHON_NAME.findall(text) if not _resolves(n)})
    assert not missing, f"{path.name} names Python objects that do not exist: {missing}"


@pytest.mark.parametrize("path", _ALL_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_exit_status_mentioned_is_one_pytest_gives(path: Path) -> None:
    codes = {int(c) for c in _EXIT.findall(path.read_text("utf-8"))}
    real = {int(code) for code in pytest.ExitCode}
    assert codes <= real, f"{path.name} names exit statuses pytest never gives: {codes - real}"
    # 3 is pytest's INTERNALERROR: no documented path of the plugin ends there.
    assert 3 not in codes, f"{path.name} documents an INTERNALERROR (exit status 3)"


def test_the_name_check_catches_a_missing_name() -> None:
    assert _resolves("pytest_siuo.mcqa.parse_choice")
    assert not _resolves("pytest_siuo.mcqa.parse_choices")
    assert not _resolves("pytest_siuo.nosuchmodule")
