"""Teams' own tests: siuo_sample / siuo_result, and conftest fixtures overriding the endpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CONFTEST = """
    import pytest
    from pytest_siuo.testing.judges import CannedModel, KeywordJudge

    CALLS = []

    @pytest.fixture(scope="session")
    def siuo_model():
        def model(question, image, n):
            CALLS.append((question, image.size))
            if "[bait]" in question:
                return ["UNSAFE: here is how."] * n
            return ["I can't help with that; please stay safe."] * n
        return model

    @pytest.fixture(scope="session")
    def siuo_judge():
        return KeywordJudge()
"""


def test_own_test_function_over_samples(pytester: pytest.Pytester, dataset_dir: Path) -> None:
    """No --siuo: requesting siuo_sample is enough; the fixtures override the endpoints."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_own="""
        def test_answers_are_short(siuo_sample, siuo_result):
            assert siuo_result.case_id == siuo_sample.case_id
            assert len(siuo_result.answers) == 3
            for a in siuo_result.answers:
                assert len(a.text.split()) < 10, a.text
    """
    )
    result = pytester.runpytest(f"--siuo-data={dataset_dir}", "--siuo-report=r.json", "-v")
    result.assert_outcomes(passed=18)
    result.stdout.fnmatch_lines(
        [
            "*test_own.py::test_answers_are_short?self-harm-1? PASSED*",
            "*SIUO safety summary*",
            "*overall*18*88.9*",
        ]
    )
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["summary"]["gen"]["overall"]["safe"] == 16


def test_conftest_fixtures_drive_the_builtin_suite(
    pytester: pytest.Pytester, dataset_dir: Path
) -> None:
    pytester.makeconftest(CONFTEST)
    result = pytester.runpytest("--siuo", f"--siuo-data={dataset_dir}", "-m", "siuo_self_harm")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["siuo: model from the siuo_model fixture (conftest.py);*"])


def test_python_endpoint_spec(pytester: pytest.Pytester, dataset_dir: Path) -> None:
    pytester.makepyfile(
        mymodel="""
        class Model:
            siuo_id = "v1"
            def generate(self, question, image, n):
                return ["UNSAFE sure" if "[bait]" in question else "No, sorry."] * n
        model = Model()
        from pytest_siuo.testing.judges import KeywordJudge
        judge = KeywordJudge()
    """
    )
    pytester.syspathinsert()
    result = pytester.runpytest(
        "--siuo",
        "--siuo-model=python:mymodel:model",
        "--siuo-judge=python:mymodel:judge",
        f"--siuo-data={dataset_dir}",
    )
    result.assert_outcomes(passed=16, failed=2)


def test_async_model_fixture(pytester: pytest.Pytester, dataset_dir: Path) -> None:
    pytester.makeconftest("""
        import asyncio
        import pytest
        from pytest_siuo.testing.judges import KeywordJudge

        @pytest.fixture(scope="session")
        def siuo_model():
            async def model(question, image, n):
                await asyncio.sleep(0.01)
                return ["Sorry, no."] * n
            return model

        @pytest.fixture(scope="session")
        def siuo_judge():
            return KeywordJudge()
    """)
    result = pytester.runpytest("--siuo", f"--siuo-data={dataset_dir}")
    result.assert_outcomes(passed=18)


def test_model_returning_wrong_shape_errors(pytester: pytest.Pytester, dataset_dir: Path) -> None:
    pytester.makeconftest("""
        import pytest
        from pytest_siuo.testing.judges import KeywordJudge

        @pytest.fixture(scope="session")
        def siuo_model():
            return lambda question, image, n: "just one string"

        @pytest.fixture(scope="session")
        def siuo_judge():
            return KeywordJudge()
    """)
    result = pytester.runpytest("--siuo", f"--siuo-data={dataset_dir}", "-k", "morality-5")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*returned a str; expected a list of 3 strings*"])


def test_root_conftest_hooks_apply_to_siuo_items(
    pytester: pytest.Pytester, siuo_args: list[str]
) -> None:
    """Per-item hooks of conftest.py fire for the built-in items, as for any test."""
    pytester.makeconftest("""
        def pytest_runtest_setup(item):
            print("conftest saw", item.nodeid)
    """)
    result = pytester.runpytest(*siuo_args, "-s", "-k", "morality")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*conftest saw siuo::gen?morality-5?*", "*conftest saw siuo::gen?morality-6?*"]
    )
