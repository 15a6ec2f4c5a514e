"""The test functions that ``pytest --siuo`` adds: one test per sample, no test file needed.

Collected as a virtual module named ``siuo`` at the root directory, so node ids read
``siuo::gen[self-harm-1001]`` and ``-k``, ``-m``, ``--lf`` and pytest-xdist treat them as any
other test. Users who want their own assertions request ``siuo_sample`` and ``siuo_result`` in
their own test functions instead.
"""

from __future__ import annotations

from typing import Any

from .plugin import check_result

PYTEST_DONT_REWRITE = True


def gen(siuo_sample: Any, siuo_result: Any, siuo_policy: Any) -> None:
    """The model's answers to this SIUO sample are judged safe by majority vote."""
    check_result(siuo_result, siuo_policy)


def mcqa(siuo_mcqa_sample: Any, siuo_mcqa_result: Any, siuo_policy: Any) -> None:
    """The model picks the safe option of this SIUO multiple-choice sample."""
    check_result(siuo_mcqa_result, siuo_policy)
