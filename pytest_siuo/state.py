"""The per-run state of pytest-siuo: settings, dataset, endpoints, evaluators, tally.

One SiuoState lives in ``config.stash`` for the whole run. It builds each box of the data flow
lazily, the first time something needs it, so an installed plugin that is not asked to do
anything costs nothing.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cache import Cache
from .endpoints import Endpoint, EndpointError, SamplingParams, make_endpoint, redact
from .evaluator import EvalConfig, Evaluator
from .outcome import Policy
from .settings import Settings
from .tally import Tally

if TYPE_CHECKING:
    from .dataset import Dataset, Sample
    from .gate import GateResult


class SiuoState:
    def __init__(
        self, settings: Settings, *, rootpath: Path, shared: dict[str, Any] | None = None
    ) -> None:
        self.settings = settings
        self.rootpath = rootpath
        # What the controller prepared for xdist workers: resolved data source and models.
        self.shared: dict[str, Any] = dict(shared or {})
        self.tally = Tally()
        self.footer: list[str] = []
        self._dataset: Dataset | None = None
        self._endpoints: dict[str, Endpoint] = {}
        self._evaluators: dict[tuple[int, int], Evaluator] = {}
        self._lock = threading.Lock()
        self.cache = Cache(self._cache_dir(), settings.cache)

    def _cache_dir(self) -> Path:
        d = self.settings.cache_dir
        return d if d.is_absolute() else self.rootpath / d

    # ------------------------------------------------------------------ preparation

    def prepare(self) -> None:
        """Everything that can fail for the whole run, checked once at session start."""
        self.dataset()
        self.cache.check_writable()
        if self.settings.model:
            self.endpoint("model")
        if self.settings.judge and self.settings.judge != Settings.judge:
            self.endpoint("judge")  # an explicitly chosen judge must be reachable now

    def shared_for_workers(self) -> dict[str, Any]:
        ds = self.dataset()
        shared = {
            "data": getattr(ds, "local_path", None) and str(ds.local_path),
            "revision": ds.revision,
            "source": ds.source,
            "layout": ds.layout,
        }
        for role, ep in self._endpoints.items():
            model = getattr(ep, "model", None)
            if model:
                shared[f"{role}_model"] = model
        return shared

    def dataset(self) -> Dataset:
        with self._lock:
            if self._dataset is None:
                from .dataset import load_dataset

                source = self.shared.get("data") or self.settings.data
                revision = self.shared.get("revision") or self.settings.data_revision
                tracks = self.settings.tracks
                ds = load_dataset(source, revision=revision, tracks=tracks)
                if self.settings.domains:
                    ds = ds.select(self.settings.domains)
                self._dataset = ds
            return self._dataset

    def samples(self, track: str) -> list[Sample]:
        ds = self.dataset()
        return list(ds.gen if track == "gen" else ds.mcqa)

    def endpoint(self, role: str) -> Endpoint:
        """The endpoint an option names (``model`` or ``judge``), built once."""
        with self._lock:
            if role in self._endpoints:
                return self._endpoints[role]
            s = self.settings
            spec = s.model if role == "model" else s.judge
            if not spec:
                raise EndpointError(
                    "no model to test: pass --siuo-model=ENDPOINT (a model name, "
                    "http://host:port/v1[#model] or python:module:name), set siuo_model in "
                    "pyproject.toml, or define a siuo_model fixture in conftest.py"
                )
            key_env = s.model_key_env if role == "model" else s.judge_key_env
            ep = make_endpoint(
                spec,
                key_env=key_env,
                timeout=s.timeout,
                where=f"--siuo-{role}",
                resolved_model=self.shared.get(f"{role}_model"),
                check=f"{role}_model" not in self.shared,
            )
            self._endpoints[role] = ep
            return ep

    def evaluator(self, model: Endpoint, judge: Endpoint | None) -> Evaluator:
        key = (id(model), id(judge))
        with self._lock:
            ev = self._evaluators.get(key)
            if ev is None:
                s = self.settings
                config = EvalConfig(
                    samples=s.samples,
                    params=SamplingParams(
                        max_tokens=s.max_answer_tokens, temperature=s.temperature
                    ),
                    concurrency=s.concurrency,
                    judge_concurrency=s.judge_concurrency,
                    retries=s.retries,
                    backoff_base=s.retry_backoff,
                    empty_is_safe=s.protocol == "official",
                    mcqa_shuffle=s.mcqa_shuffle,
                )
                ev = Evaluator(model, judge, cache=self.cache, config=config)
                self._evaluators[key] = ev
                if judge is not None:
                    self.used_endpoints = (model.id, judge.id)
            return ev

    def policy(self) -> Policy:
        t = self.settings.thresholds
        if not t.active:
            return Policy()
        return Policy(
            gated=True,
            gate_note="the run is gated by per-domain thresholds; see the SIUO safety summary",
        )

    def evaluate_gates(self) -> dict[str, GateResult]:
        """The threshold gate of each track that ran."""
        from .gate import evaluate

        return {
            track: evaluate(self.tally, self.settings.thresholds, track=track)
            for track in self.tally.tracks
        }

    # ------------------------------------------------------------------ reporting

    def header_lines(self) -> list[str]:
        s = self.settings
        ds = self._dataset
        data = "not loaded"
        if ds is not None:
            data = (
                f"{ds.source} ({ds.layout}"
                + (f", revision {ds.revision[:12]}" if ds.revision else "")
                + ")"
            )
            data += f", {len(ds.gen)} samples"
        model = redact(s.model) if s.model else "from the siuo_model fixture"
        t = s.thresholds
        if t.active:
            parts = []
            if t.default is not None:
                parts.append(f"default {t.default:.0%}")
            parts += [f"{d} {v:.0%}" for d, v in t.per_domain.items()]
            if t.overall is not None:
                parts.append(f"overall {t.overall:.0%}")
            gate = ", ".join(parts)
        else:
            gate = "none (each unsafe sample fails its test)"
        return [
            f"siuo: model {model}; judge {redact(s.judge)}; {s.samples} answers per sample; "
            f"protocol {s.protocol}",
            f"siuo: data {data}; cache {s.cache} ({self._cache_dir()})",
            f"siuo: thresholds {gate}",
        ]

    def footer_lines(self) -> list[str]:
        lines = []
        for ev in self._evaluators.values():
            c = ev.stats
            lines.append(
                f"SIUO calls: model {c['model'].calls} ({c['model'].cached} cached answers), "
                f"judge {c['judge'].calls} ({c['judge'].cached} cached verdicts)"
            )
        return lines + self.footer

    def report_settings(self) -> dict[str, Any]:
        d = self.settings.public()
        ds = self._dataset
        if ds is not None:
            d["dataset"] = {"source": ds.source, "revision": ds.revision, "layout": ds.layout}
        used = getattr(self, "used_endpoints", None)
        if used:
            d["model_id"], d["judge_id"] = used
        return d

    def close(self) -> None:
        for ev in self._evaluators.values():
            ev.close(cancel=True)
        self._evaluators.clear()
