"""pytest habits under a SIUO gate: ``--lf`` reruns the samples that were not safe, a node id
copied from the output and a mistyped ``-m`` marker say what to type instead."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_siuo.selectors import marker_names, node_id_problem, unknown_marker_problem

GATED = ("--siuo-threshold=0.99", "-p", "no:randomly")


@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["no-xdist", "xdist"])
def test_lf_reruns_the_samples_that_were_not_safe(
    pytester: pytest.Pytester, siuo_args: list[str], xdist: tuple[str, ...]
) -> None:
    first = pytester.runpytest(*siuo_args, *xdist, *GATED, "--siuo-report=first.json")
    assert first.ret == pytest.ExitCode.TESTS_FAILED
    cases = json.loads((pytester.path / "first.json").read_text())["cases"]
    not_safe = sorted(f"siuo::gen[{c['case_id']}]" for c in cases if c["outcome"] != "safe")
    assert len(not_safe) == 2  # the loopback model answers two samples unsafely

    again = pytester.runpytest(*siuo_args, *xdist, *GATED, "--lf", "-rx")
    assert again.ret == pytest.ExitCode.TESTS_FAILED
    ran = sorted(
        line.split()[1] for line in again.stdout.lines if line.startswith("XFAIL siuo::gen[")
    )
    assert ran == not_safe
    again.stdout.fnmatch_lines(["*SIUO: partial run (16 of 18 sample(s) not run, --lf)*"])


def test_lf_after_a_passing_gate_reruns_everything(
    pytester: pytest.Pytester, siuo_args: list[str]
) -> None:
    # Passing: the unsafe samples were tolerated by the gate, so nothing failed last time.
    first = pytester.runpytest(*siuo_args, "--siuo-threshold=0.4", "-p", "no:randomly")
    assert first.ret == pytest.ExitCode.OK
    lastfailed = pytester.path / ".pytest_cache" / "v" / "cache" / "lastfailed"
    assert not lastfailed.exists() or json.loads(lastfailed.read_text()) == {}
    again = pytester.runpytest(*siuo_args, "--siuo-threshold=0.4", "-p", "no:randomly", "--lf")
    assert again.ret == pytest.ExitCode.OK
    assert "deselected" not in again.stdout.str()


def test_a_copied_node_id_says_which_k_to_use(
    pytester: pytest.Pytester, siuo_args: list[str]
) -> None:
    result = pytester.runpytest(*siuo_args, "siuo::gen[dangerous-behavior-3]")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == (
        "ERROR: siuo::gen[dangerous-behavior-3] is a SIUO sample, not a file: select samples "
        "with -k, for example -k 'gen[dangerous-behavior-3]' "
        "(or -m siuo_dangerous_behavior for its whole domain)"
    )
    # The form it suggests selects exactly that sample.
    chosen = pytester.runpytest(*siuo_args, "-k", "gen[dangerous-behavior-3]", "-p", "no:randomly")
    chosen.stdout.fnmatch_lines(["*collected 18 items / 17 deselected / 1 selected*"])


def test_a_mistyped_marker_lists_the_markers(
    pytester: pytest.Pytester, siuo_args: list[str]
) -> None:
    result = pytester.runpytest(*siuo_args, "-m", "siuo_selfharm")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: -m 'siuo_selfharm': no marker named siuo_selfharm; the SIUO markers are: "
            "siuo, siuo_self_harm, *siuo_privacy_violation"
        ]
    )
    right = pytester.runpytest(*siuo_args, "-m", "siuo_self_harm", "-p", "no:randomly")
    right.stdout.fnmatch_lines(["*16 deselected / 2 selected*"])


def test_markers_named_in_an_expression_are_checked_word_by_word() -> None:
    assert unknown_marker_problem("siuo and not siuo_morality") is None
    assert unknown_marker_problem("slow or (siuo_self_harm and not siuo_morality)") is None
    problem = unknown_marker_problem("siuo_self_harm or siuo_moral")
    assert problem is not None and "no marker named siuo_moral;" in problem
    # A project's own siuo_ marker is not a typo; markers of other names are pytest's business.
    assert unknown_marker_problem("siuo_nightly", registered=["siuo_nightly"]) is None
    assert unknown_marker_problem("nightly and not flaky") is None
    assert len(marker_names()) == 10


def test_a_node_id_is_only_questioned_when_no_siuo_path_exists(tmp_path) -> None:  # type: ignore[no-untyped-def]
    problem = node_id_problem(["siuo::gen[a-1]", "siuo::mcqa[b-2]"], tmp_path)
    assert problem is not None and "-k 'gen[a-1] or mcqa[b-2]'" in problem
    assert "(or -m" not in problem  # "a" is no domain: no marker to suggest
    assert node_id_problem(["tests/test_x.py::test_y"], tmp_path) is None
    (tmp_path / "siuo").mkdir()  # a real folder of that name: pytest's to resolve
    assert node_id_problem(["siuo::gen[a-1]"], tmp_path) is None


def test_collect_only_lists_the_samples_without_any_endpoint(
    pytester: pytest.Pytester, dataset_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No model, and the default judge without a key: listing the tests needs neither.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    result = pytester.runpytest("--siuo", f"--siuo-data={dataset_dir}", "--co", "-q")
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
    result.stdout.fnmatch_lines(["siuo::gen[[]self-harm-1[]]", "*18 tests collected*"])
    # A real run still says what is missing, before any call.
    real = pytester.runpytest("--siuo", f"--siuo-data={dataset_dir}")
    assert real.ret == pytest.ExitCode.USAGE_ERROR
