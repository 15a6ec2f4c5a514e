"""pytest plugin of the benchmarks (``-p timing_plugin``): when each phase of a run happened.

Loaded with ``-p`` rather than from a conftest.py so its hooks fire for every item: pytest only
applies a conftest's item hooks to items whose path lies under the conftest's folder. The wall
clock (``time.time``) is shared with the benchmark process, which subtracts its spawn time.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

_T: dict[str, float] = {}


@pytest.hookimpl(tryfirst=True)  # before any plugin's configure: where pytest's start ends
def pytest_configure(config: Any) -> None:
    _T["configure"] = time.time()


def pytest_collection_finish(session: Any) -> None:
    _T["collected"] = time.time()
    _T["items"] = len(session.items)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    # Under xdist the controller collects nothing: its items are a worker's list (each worker
    # collects the same), and when the first worker had them.
    _T.setdefault("collected", time.time())
    _T["items"] = len(ids)


def pytest_runtest_logstart(nodeid: str, location: Any) -> None:
    _T.setdefault("first_item", time.time())


def pytest_runtest_logreport(report: Any) -> None:
    if report.failed:
        _T["failed"] = _T.get("failed", 0) + 1


def pytest_runtest_logfinish(nodeid: str, location: Any) -> None:
    _T["last_item"] = time.time()


def pytest_unconfigure(config: Any) -> None:
    if hasattr(config, "workerinput"):
        return  # the controller's file is the run's; a worker's would overwrite it
    _T["unconfigure"] = time.time()
    path = os.environ.get("SIUO_BENCH_TIMINGS")
    if path:
        with open(path, "w") as f:
            json.dump(_T, f)
