"""The default data source (the SIUO hub dataset at its pinned revision), offline, end to end."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pytest_siuo.dataset import DEFAULT_HUB_REVISION
from pytest_siuo.testing.data import write_hub_cache
from pytest_siuo.testing.judges import CannedModel, KeywordJudge

CONFTEST = """
    import pytest
    from pytest_siuo.testing.judges import CannedModel, KeywordJudge

    @pytest.fixture(scope="session")
    def siuo_model():
        return CannedModel()

    @pytest.fixture(scope="session")
    def siuo_judge():
        return KeywordJudge()
"""


def hub_env(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    # runpytest_subprocess: huggingface_hub reads some of these when it is imported.
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HOME", str(cache.parent / "hf-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_DATASETS_CACHE", raising=False)


def test_default_hub_dataset_from_the_cache(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hub"
    write_hub_cache(cache, n_per_domain=1)
    hub_env(monkeypatch, cache)
    pytester.makeconftest(CONFTEST)
    result = pytester.runpytest_subprocess("--siuo", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=9)
    result.stdout.fnmatch_lines(
        [
            f"siuo: data sinwang/SIUO (hub, revision {DEFAULT_HUB_REVISION[:12]}), "
            "9 generation samples;*",
        ]
    )
    assert CannedModel and KeywordJudge  # the conftest's imports exist in this version


def test_no_network_and_no_cache_stops_at_once(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub_env(monkeypatch, tmp_path / "empty")
    pytester.makeconftest(CONFTEST)
    start = time.monotonic()
    result = pytester.runpytest_subprocess("--siuo", "-p", "no:cacheprovider")
    assert time.monotonic() - start < 30
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "--siuo-data=PATH" in err and "HF_TOKEN" in err
    assert "Traceback" not in err
