"""The pytest-xdist scheduler of SIUO runs under ``--dist load`` (the default of ``-n``).

xdist's load scheduler hands a worker a few tests at a time and sends nothing new while the
worker still holds two: a worker whose tests each wait for a model and a judge then sees only a
few samples ahead, and its pipeline runs nearly empty (head-of-line blocking). This scheduler
deals every SIUO sample to a worker up front (:func:`pytest_siuo.distribution.partition`, which
the worker computes too, so it evaluates all its samples from its first SIUO test on) and
schedules every other test as ``--dist load`` does. Installed through xdist's public
``pytest_xdist_make_scheduler`` hook; this module is imported only from that hook.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from xdist.scheduler import LoadScheduling  # type: ignore[import-untyped]  # no py.typed

from .distribution import WorkerShare, partition

if TYPE_CHECKING:
    import pytest


class SiuoLoadScheduling(LoadScheduling):  # type: ignore[misc]  # xdist is untyped
    """``--dist load``, with each worker's SIUO tests sent to it in one batch at the start."""

    # LoadScheduling's state, which this class reads and extends as its own methods do.
    collection: list[str] | None
    maxschedchunk: int | None
    pending: list[int]
    node2pending: dict[Any, list[int]]
    node2collection: dict[Any, list[str]]

    def __init__(
        self, config: pytest.Config, log: Any = None, *, case_ids: Collection[str]
    ) -> None:
        super().__init__(config, log)
        self.case_ids = frozenset(case_ids)

    def schedule(self) -> None:
        assert self.collection_is_completed
        if self.collection is not None:  # a worker added later: as --dist load does
            super().schedule()
            return
        if not self._check_nodes_have_same_collection():
            self.log("**Different tests collected, aborting run**")
            return
        collection = self.collection = next(iter(self.node2collection.values()))
        if not collection:
            return
        chunk_cap = self.maxschedchunk = self.maxschedchunk or len(collection)
        nodes = self.nodes
        shares = {
            node: WorkerShare.from_json(node.workerinput.get("siuo", {}).get("worker"))
            for node in nodes
        }
        count = next((s.count for s in shares.values() if s is not None), len(nodes))
        parts = partition(collection, self.case_ids, count)
        dealt: set[int] = set()
        for node in nodes:
            s = shares[node]
            if s is None or not s.partition or not parts[s.index]:
                continue
            # The worker runs its samples in this order and evaluates them all concurrently.
            self._send(node, parts[s.index])
            dealt.update(parts[s.index])
        # A part whose worker is gone (crashed during collection) goes to whoever is free,
        # with every other test, as --dist load sends them.
        self.pending[:] = [i for i in range(len(collection)) if i not in dealt]
        if self.pending:
            chunk = max(2, min(len(self.pending) // len(nodes) // 4, chunk_cap))
            for node in nodes:
                self._send_tests(node, chunk)
        if not self.pending:
            for node in nodes:
                node.shutdown()

    def _send(self, node: Any, indices: list[int]) -> None:
        self.node2pending[node].extend(indices)
        node.send_runtest_some(indices)
