"""How a run's SIUO samples and call limits are split over pytest-xdist workers.

Plain functions of the collected node ids, so that the controller (which schedules, and has no
items) and each worker (which has the items, and must know early which ones it will run) compute
the same split. Used by :mod:`pytest_siuo.scheduler` and the plugin's hooks; no pytest here.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class WorkerShare:
    """Which part of the run an xdist worker takes: ``index`` of ``count`` shares of the call
    limits, and whether the scheduler hands it the SIUO tests of partition ``index`` up front
    (``partition``; False under another ``--dist`` mode, or for a worker that replaced a crashed
    one)."""

    index: int
    count: int
    partition: bool

    def to_json(self) -> dict[str, object]:
        return {"index": self.index, "count": self.count, "partition": self.partition}

    @classmethod
    def from_json(cls, data: object) -> WorkerShare | None:
        if not isinstance(data, dict):
            return None
        index, count = data.get("index"), data.get("count")
        if not isinstance(index, int) or not isinstance(count, int) or not 0 <= index < count:
            return None
        return cls(index=index, count=count, partition=bool(data.get("partition")))


def share(total: int, count: int, index: int) -> int:
    """Worker ``index``'s part of a whole-run limit of ``total`` calls in flight over ``count``
    workers: the parts differ by at most one and sum to ``total``. A worker always gets at least
    one call (a limit below the number of workers allows one call per worker)."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"worker index {index} is not one of {count} workers")
    base, extra = divmod(total, count)
    return max(1, base + (1 if index < extra else 0))


def sample_key(nodeid: str, case_ids: Collection[str]) -> str | None:
    """The case id of the SIUO sample a test runs, read from its node id, or None.

    A built-in test is ``siuo::gen[self-harm-1]``; a custom test that requests ``siuo_sample``
    carries the case id in its parameter id, alone or joined with other parameters' ids
    (``test_x[self-harm-1-de]``). The longest case id found wins. A test whose id merely looks
    like a case id is only scheduled with that sample: nothing is evaluated for it.
    """
    if not nodeid.endswith("]"):
        return None
    last = nodeid.rsplit("::", 1)[-1]
    start = last.find("[")
    if start < 0:
        return None
    param = last[start + 1 : -1]
    if param in case_ids:
        return param
    tokens = param.split("-")
    best: str | None = None
    for i in range(len(tokens)):
        for j in range(len(tokens), i, -1):
            candidate = "-".join(tokens[i:j])
            if candidate in case_ids and (best is None or len(candidate) > len(best)):
                best = candidate
                break
    return best


def partition(nodeids: Sequence[str], case_ids: Collection[str], count: int) -> list[list[int]]:
    """The indices (into ``nodeids``) of the SIUO tests each of ``count`` workers runs.

    Samples are dealt round-robin in collection order, so the parts differ by at most one
    sample; every test of one sample (the built-in one and custom ones) goes to the same part,
    so one worker evaluates each sample. Tests of no sample are in no part.
    """
    if count < 1:
        raise ValueError(f"count={count}: at least one worker")
    parts: list[list[int]] = [[] for _ in range(count)]
    dealt: dict[str, int] = {}
    for i, nodeid in enumerate(nodeids):
        key = sample_key(nodeid, case_ids)
        if key is None:
            continue
        part = dealt.setdefault(key, len(dealt) % count)
        parts[part].append(i)
    return parts
