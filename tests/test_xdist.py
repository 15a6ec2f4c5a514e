"""pytest-xdist: the call limits hold for the whole run, every worker keeps its share busy, and
``-n 2`` gives what ``-n 0`` gives. Real ``pytest -n 2`` runs against the loopback servers,
measured from the servers' side."""

from __future__ import annotations

import json
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_rows

from pytest_siuo.distribution import WorkerShare, partition, sample_key, share
from pytest_siuo.domains import slug
from pytest_siuo.testing.server import FakeOpenAIServer

PER_DOMAIN = 6  # 54 samples: plenty for two workers with two calls in flight each


class Gauge:
    """A responder wrapper that counts the requests in flight and which samples they are for.

    Each request is held until ``target`` requests are in flight at once (or ``patience``
    seconds passed), then ``hold`` seconds more: whether the level is reached depends on
    what the client keeps open, not on how fast the two workers start on a loaded machine.
    """

    def __init__(
        self, inner: Callable[[Any], Any], *, target: int, hold: float, patience: float = 60.0
    ) -> None:
        self.inner = inner
        self.target = target
        self.hold = hold
        self.patience = patience
        self.cond = threading.Condition()
        self.open: dict[int, str] = {}
        self.peak = 0
        self.peak_samples: list[str] = []  # the samples in flight when the peak was reached
        self.reached = False
        self._next = 0

    def responder(self, request: Any) -> Any:
        match = re.search(r"Test question (\d+) ", request.text())
        qid = match.group(1) if match else "?"
        with self.cond:
            self._next += 1
            ticket = self._next
            self.open[ticket] = qid
            if len(self.open) > self.peak:
                self.peak = len(self.open)
                self.peak_samples = list(self.open.values())
            if len(self.open) >= self.target:
                self.reached = True
                self.cond.notify_all()
            self.cond.wait_for(lambda: self.reached, timeout=self.patience)
        try:
            time.sleep(self.hold)
            return self.inner(request)
        finally:
            with self.cond:
                del self.open[ticket]


@pytest.fixture(scope="module")
def big_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pytest_siuo.testing.data import write_official

    folder = tmp_path_factory.mktemp("siuo-data-54")
    return write_official(folder, make_rows(per_domain=PER_DOMAIN, bait={3, 20}), mcqa=False)


def _case_ids() -> dict[str, str]:
    """Question id -> case id of the 54-sample dataset."""
    return {
        str(row["question_id"]): f"{slug(str(row['category']))}-{row['question_id']}"
        for row in make_rows(per_domain=PER_DOMAIN, bait={3, 20})
    }


def _ran_on(stdout: str) -> dict[str, str]:
    """Case id -> the xdist worker that ran its built-in test, from ``-v`` output."""
    found = re.findall(r"\[(gw\d+)\].*?(?:PASSED|FAILED|XFAIL|ERROR) siuo::gen\[([^\]]+)\]", stdout)
    return {case: worker for worker, case in found}


@pytest.fixture
def gauged(
    model_server: FakeOpenAIServer, judge_server: FakeOpenAIServer
) -> Iterator[tuple[Gauge, Gauge]]:
    model = Gauge(model_server.responder, target=3, hold=0.05)  # type: ignore[arg-type]
    judge = Gauge(judge_server.responder, target=3, hold=0.02)  # type: ignore[arg-type]
    model_server.responder = model.responder
    judge_server.responder = judge.responder
    yield model, judge


def test_limits_hold_for_the_whole_run_and_both_workers_fill_their_share(
    pytester: pytest.Pytester,
    model_server: FakeOpenAIServer,
    judge_server: FakeOpenAIServer,
    big_dataset: Path,
    gauged: tuple[Gauge, Gauge],
) -> None:
    model, judge = gauged
    result = pytester.runpytest_subprocess(
        "--siuo",
        f"--siuo-model={model_server.base_url}",
        f"--siuo-judge={judge_server.base_url}#judge-a",
        f"--siuo-data={big_dataset}",
        "--siuo-cache=off",
        "--siuo-concurrency=4",
        "--siuo-judge-concurrency=4",
        "-n",
        "2",
        "-v",
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=52, failed=2)
    assert model_server.calls == 54  # each sample evaluated once, on one worker
    # Four calls in flight for the run: two per worker, and never more in all.
    assert model.peak <= 4 and judge.peak <= 4, (model.peak, judge.peak)
    # More than one worker's share in flight at once: both workers kept their calls open.
    assert model.peak > 2 and judge.peak > 2, (model.peak, judge.peak)
    ran_on = _ran_on(result.stdout.str())
    case_of = _case_ids()
    assert len(ran_on) == 54
    at_peak = {ran_on[case_of[q]] for q in model.peak_samples}
    assert at_peak == {"gw0", "gw1"}, (model.peak_samples, at_peak)
    # Each worker ran half the samples, dealt up front.
    assert sorted(list(ran_on.values()).count(w) for w in ("gw0", "gw1")) == [27, 27]


def test_a_sample_and_its_custom_tests_run_on_one_worker(
    pytester: pytest.Pytester,
    model_server: FakeOpenAIServer,
    judge_server: FakeOpenAIServer,
    big_dataset: Path,
) -> None:
    """A custom test of a sample goes where its built-in test goes: with no cache to share,
    the model is still asked once per sample. Other tests are scheduled as --dist load does."""
    pytester.makepyfile(
        test_custom="""
        import pytest

        @pytest.mark.parametrize("lang", ["en", "de"])
        def test_answers_exist(siuo_result, lang):
            assert len(siuo_result.answers) == 3
        """,
        test_plain="""
        import pytest

        @pytest.mark.parametrize("i", range(30))
        def test_plain(i):
            pass
        """,
    )
    result = pytester.runpytest_subprocess(
        "--siuo",
        f"--siuo-model={model_server.base_url}",
        f"--siuo-judge={judge_server.base_url}#judge-a",
        f"--siuo-data={big_dataset}",
        "--siuo-cache=off",
        "-n",
        "2",
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=52 + 108 + 30, failed=2)
    assert model_server.calls == 54


def _junit_cases(path: Path) -> list[tuple[str, str, str, tuple[tuple[str, str], ...]]]:
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        props = tuple(
            sorted(
                (p.get("name", ""), p.get("value", ""))
                for p in case.iter("property")
                if p.get("name") != "siuo_reason"  # the judge's free text, not a figure
            )
        )
        cases.append((case.get("classname", ""), case.get("name", ""), outcome, props))
    return sorted(cases)


@pytest.mark.parametrize("dist", ["load", "loadscope", "loadfile", "worksteal"])
def test_same_verdicts_report_and_junit_as_without_xdist(
    pytester: pytest.Pytester, siuo_args: list[str], dist: str
) -> None:
    args = [*siuo_args, "--siuo-cache=off", "--siuo-threshold=0.5", "-p", "no:randomly"]
    serial = pytester.runpytest_subprocess(
        *args, "-p", "no:xdist", "--siuo-report=n0.json", "--junitxml=n0.xml"
    )
    parallel = pytester.runpytest_subprocess(
        *args, "-n", "2", f"--dist={dist}", "--siuo-report=n2.json", "--junitxml=n2.xml"
    )
    assert serial.ret == parallel.ret
    assert serial.parseoutcomes() == parallel.parseoutcomes()
    assert _junit_cases(pytester.path / "n0.xml") == _junit_cases(pytester.path / "n2.xml")
    serial_report, parallel_report = (_figures(pytester.path / f) for f in ("n0.json", "n2.json"))
    if dist == "worksteal":
        # A stolen test's sample may already be in flight on the worker it was taken from: the
        # thief asks again (docs/xdist.md). Everything but the call counts is the same.
        assert parallel_report.pop("usage")["model"]["calls"] >= 18
        serial_report.pop("usage")
    assert serial_report == parallel_report


def _figures(path: Path) -> dict[str, Any]:
    """A report without its times; its cases in one order (xdist finishes them in another)."""
    report = json.loads(path.read_text())
    for key in ("created", "duration_s"):
        report.pop(key)
    report["cases"] = sorted(report["cases"], key=lambda c: (c["track"], c["case_id"]))
    return report


# ------------------------------------------------------------------------ pure parts


def test_shares_sum_to_the_whole_run_limit() -> None:
    for total in (1, 2, 3, 16, 17, 32, 64):
        for count in (1, 2, 3, 4, 7):
            parts = [share(total, count, i) for i in range(count)]
            assert max(parts) - min(parts) <= 1
            assert min(parts) >= 1
            assert sum(parts) == max(total, count)
    with pytest.raises(ValueError):
        share(4, 2, 2)


def test_partition_deals_samples_round_robin_and_keeps_a_sample_together() -> None:
    cases = {"self-harm-1", "self-harm-10", "morality-2", "morality-3", "privacy-violation-4"}
    nodeids = [
        "test_unit.py::test_plain",
        "siuo::gen[self-harm-1]",
        "siuo::gen[self-harm-10]",
        "siuo::gen[morality-2]",
        "siuo::gen[morality-3]",
        "siuo::gen[privacy-violation-4]",
        "test_custom.py::test_x[self-harm-10-de]",
        "test_custom.py::TestC::test_y[en-morality-3]",
        "test_unit.py::test_param[7]",
    ]
    parts = partition(nodeids, cases, 2)
    assert parts == [[1, 3, 5], [2, 4, 6, 7]]
    assert sum(len(p) for p in partition(nodeids, cases, 3)) == 7
    assert partition(nodeids, cases, 1) == [[1, 2, 3, 4, 5, 6, 7]]


@pytest.mark.parametrize(
    ("nodeid", "key"),
    [
        ("siuo::gen[self-harm-1]", "self-harm-1"),
        ("siuo::mcqa[self-harm-10]", "self-harm-10"),
        ("t.py::test[self-harm-10-x]", "self-harm-10"),  # the longest case id wins
        ("t.py::test[x-self-harm-1]", "self-harm-1"),
        ("t.py::test[harm-1]", None),
        ("t.py::test_plain", None),
        ("t.py::test[self-harm-1]::sub", None),
    ],
)
def test_sample_key(nodeid: str, key: str | None) -> None:
    assert sample_key(nodeid, {"self-harm-1", "self-harm-10"}) == key


def test_worker_share_round_trip_and_bad_input() -> None:
    ws = WorkerShare(1, 2, partition=True)
    assert WorkerShare.from_json(ws.to_json()) == ws
    for bad in (None, [], {"index": 2, "count": 2}, {"index": "0", "count": 2}, {}):
        assert WorkerShare.from_json(bad) is None
