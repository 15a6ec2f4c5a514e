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


def test_each_option_is_declared_once_and_sets_a_real_setting() -> None:
    import dataclasses

    from pytest_siuo.options import OPTIONS
    from pytest_siuo.settings import Settings, option_help

    fields = {f.name for f in dataclasses.fields(Settings)}
    dests = [o.dest for o in OPTIONS]
    assert len(dests) == len(set(dests)) and len({o.flag for o in OPTIONS}) == len(OPTIONS)
    set_by_table = {o.setting for o in OPTIONS if o.setting is not None}
    assert set_by_table <= fields
    # What no table entry sets is combined by build_settings from a linelist option.
    assert fields - set_by_table == {"enabled", "domains", "thresholds", "answers"}
    for o in OPTIONS:
        text = option_help(o)
        assert "{" not in text, o.dest  # every placeholder filled
        if "{default}" in o.help:
            value = getattr(Settings, o.setting or "")
            assert (f"{value:g}" if isinstance(value, float) else str(value)) in text
