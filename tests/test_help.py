"""The option group shows in --help (argparse formats help strings: a bare % breaks it)."""

from __future__ import annotations

import pytest


def test_help_lists_the_siuo_options(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([
        "SIUO cross-modality safety tests (pytest-siuo):",
        "*--siuo *Add one test per SIUO sample*",
        "*--siuo-model=ENDPOINT*",
        "*--siuo-threshold-on=point|interval*",
        "*95% Wilson*",
        "*siuo_thresholds (linelist):*",
    ])
