"""The per-run state of pytest-siuo: settings, dataset, endpoints, evaluators, tally.

One SiuoState lives in ``config.stash`` for the whole run. It builds each box of the data flow
lazily, the first time something needs it, so an installed plugin that is not asked to do
anything costs nothing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cache import Cache
from .errors import EndpointError
from .outcome import Policy
from .records import CaseRecord
from .settings import DEFAULT_JUDGE, Settings
from .tally import Tally
from .text import shorten

# The engine (endpoints, evaluator: asyncio, openai) is imported where it is first used: a
# state exists for every pytest run, most of which never evaluate a sample.
if TYPE_CHECKING:
    from .answers_file import AnswersFile
    from .baseline import Baseline
    from .dataset import Dataset, Sample
    from .decision import RunResult
    from .endpoints import Endpoint
    from .evaluator import Evaluator


NO_MODEL = (
    "no model to test: pass --siuo-model=ENDPOINT (a model name, http://host:port/v1[#model] "
    "or python:module:name), set siuo_model in pyproject.toml, or define a siuo_model fixture "
    "in conftest.py"
)


class SiuoState:
    def __init__(
        self,
        settings: Settings,
        *,
        rootpath: Path,
        shared: dict[str, Any] | None = None,
        invocation_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.rootpath = rootpath
        self.invocation_dir = invocation_dir or Path.cwd()
        self._answers: AnswersFile | None = None
        self._baseline: Baseline | None = None
        #: Results of --siuo-judge-check, for the report (None when it did not run).
        self.judge_check_summary: dict[str, Any] | None = None
        self.judge_check_lines: list[str] = []
        self._judge_checked = False
        self.judge_unfit: str | None = None
        # What the controller prepared for xdist workers: resolved data source and models.
        self.shared: dict[str, Any] = dict(shared or {})
        self.tally = Tally()
        #: Ids of the endpoints that answered and judged (from this process or its workers).
        self.endpoint_ids: dict[str, str] = {}
        #: Fixtures that a conftest.py replaces (siuo_model, siuo_judge), seen at start.
        self.fixtures: frozenset[str] = frozenset()
        self.footer: list[str] = []
        self.worker_usage: list[dict[str, dict[str, int]]] = []
        self.worker_endpoint_notes: list[str] = []  # what xdist workers' endpoints adapted
        self._adapted: dict[int, tuple[Any, Endpoint]] = {}
        self._dataset: Dataset | None = None
        self._endpoints: dict[str, Endpoint] = {}
        self._evaluators: dict[tuple[int, int], Evaluator] = {}
        #: Called while a test waits for its sample (the controller's progress lines); None
        #: on xdist workers, whose counts travel with their test reports instead.
        self.on_wait: Callable[[], None] | None = None
        self._lock = threading.RLock()  # endpoint() may load the dataset under the lock
        self.cache = Cache(self._cache_dir(), settings.cache)

    def _cache_dir(self) -> Path:
        d = self.settings.cache_dir
        return d if d.is_absolute() else self.rootpath / d

    # ------------------------------------------------------------------ preparation

    def prepare(self, *, endpoints: bool = True) -> None:
        """Everything that can fail for the whole run, checked once at session start.
        ``endpoints=False`` (``--collect-only``): the data only, no model or judge needed."""
        self.dataset()
        if not endpoints:
            return
        self.baseline()
        self.check_output_paths()
        self.cache.check_writable()
        if self.settings.answers and "siuo_model" in self.fixtures:
            # The fixture would answer, while the header and the report said the file did.
            raise EndpointError(
                "--siuo-answers gives the answers, and a conftest.py siuo_model fixture "
                "replaces the model: keep one (drop --siuo-answers, or run where that "
                "conftest.py does not apply)"
            )
        if self.settings.model or self.settings.answers:
            self.endpoint("model")
        elif "siuo_model" not in self.fixtures:
            raise EndpointError(NO_MODEL)
        if self.settings.judge and self.settings.judge != Settings.judge:
            self.endpoint("judge")  # an explicitly chosen judge must be reachable now
        else:
            self.check_default_judge()

    def check_default_judge(self) -> None:
        """The default judge (an OpenAI model) needs a key: without one every sample would
        error, so say it now. Building the endpoint makes no call unless OPENAI_BASE_URL
        points at a server, which is then probed like any other. A default judge that its
        server no longer lists (a retired snapshot) is one usage error too; nothing is said
        when the list cannot be had."""
        from .endpoints import list_models, redact
        from .params import check_default_judge

        s = self.settings
        if "gen" not in s.tracks or "siuo_judge" in self.fixtures or s.cache == "replay":
            return
        base_url = os.environ.get("OPENAI_BASE_URL") or None
        key = os.environ.get(s.judge_key_env or "OPENAI_API_KEY") or None
        if base_url is not None or key is not None:
            # First: a retired default gets the message that names a listed alternative.
            try:
                listed = list_models(base_url or "https://api.openai.com/v1", key, timeout=10.0)
            except EndpointError:
                listed = None
            if listed is not None:
                server = f"OPENAI_BASE_URL ({redact(base_url)})" if base_url else "OpenAI"
                check_default_judge(s.judge, listed, where="--siuo-judge", server=server)
        self.endpoint("judge")

    def check_output_paths(self) -> None:
        """An output file that cannot be written fails now, not after an hour of calls."""
        from .files import probe_writable
        from .settings import SettingsError

        s = self.settings
        outputs = {
            "--siuo-report": s.report,
            "--siuo-save-baseline": s.save_baseline,
            "--siuo-markdown": s.markdown,
            "--siuo-html": s.html,
            "--siuo-save-answers": s.save_answers,
        }
        for option, path in outputs.items():
            if path is None:
                continue
            try:
                probe_writable(path.parent)
            except OSError as exc:
                raise SettingsError(
                    f"{option}={path}: cannot write there ({exc.strerror or exc}); choose a "
                    "writable folder"
                ) from None
            if path.is_dir():
                raise SettingsError(f"{option}={path} is a folder; give a file name")

    def shared_for_workers(self) -> dict[str, Any]:
        ds = self.dataset()
        shared = {
            # A hub dataset is pinned to the commit the controller resolved, so each worker
            # reads the same files from the local cache without asking the hub again.
            "data": ds.source,
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
                if "mcqa" in tracks and not ds.mcqa:
                    from .dataset import DataError

                    raise DataError(
                        f"--siuo-track={self.settings.track} needs multiple-choice rows, but "
                        f"{ds.source} has none (siuo_mcqa.json or the siuo_mcqa config)"
                    )
                if self.settings.domains:
                    ds = ds.select(self.settings.domains)
                self._dataset = ds
            return self._dataset

    def answers_file(self) -> AnswersFile:
        from .answers_file import load_answers

        if self._answers is None:
            from .answers_file import AnswersFileError

            paths = [
                p if p.is_absolute() else self.invocation_dir / p for p in self.settings.answers
            ]
            answers = load_answers(
                paths, self.dataset(), samples=self.settings.samples, tracks=self.settings.tracks
            )
            if answers.mcqa and self.settings.mcqa_shuffle is not None:
                raise AnswersFileError(
                    "--siuo-answers holds MCQA answers given in the official option order; "
                    "they cannot be judged under --siuo-mcqa-shuffle (drop that option)"
                )
            self._answers = answers
        return self._answers

    def save_answers(self, base: Path) -> list[Path]:
        """Write the run's answers in the official results format; returns the files written."""
        from .answers_file import answer_rows, mcqa_path
        from .answers_file import write_json as write_answers

        path = self.settings.save_answers
        assert path is not None
        path = path if path.is_absolute() else base / path
        ds = self.dataset()
        samples = {("gen", s.question_id): s for s in ds.gen}
        samples.update({("mcqa", s.question_id): s for s in ds.mcqa})
        written = []
        for track in self.tally.tracks:
            rows = answer_rows(
                self.tally.records(track),
                samples,
                track,
                mcqa_official_order=self.settings.mcqa_shuffle is None,
            )
            target = path if track == "gen" else mcqa_path(path)
            write_answers(target, rows)
            written.append(target)
        return written

    def loaded_samples(self) -> list[Sample]:
        """Every sample of the tracks that ran (nothing is loaded for this)."""
        if self._dataset is None:
            return []
        return [*self._dataset.gen, *self._dataset.mcqa]

    def samples(self, track: str) -> list[Sample]:
        ds = self.dataset()
        return list(ds.gen if track == "gen" else ds.mcqa)

    def endpoint(self, role: str) -> Endpoint:
        """The endpoint an option names (``model`` or ``judge``), built once."""
        from .answers_file import AnswersEndpoint
        from .endpoints import make_endpoint

        with self._lock:
            if role in self._endpoints:
                return self._endpoints[role]
            s = self.settings
            if role == "model" and s.answers:
                ep: Endpoint = AnswersEndpoint(self.answers_file())
                self._endpoints[role] = ep
                return ep
            spec = s.model if role == "model" else s.judge
            if not spec:
                raise EndpointError(NO_MODEL)
            key_env = s.model_key_env if role == "model" else s.judge_key_env
            ep = make_endpoint(
                spec,
                key_env=key_env,
                timeout=s.timeout,
                where=f"--siuo-{role}",
                resolved_model=self.shared.get(f"{role}_model"),
                check=f"{role}_model" not in self.shared,
                max_response_bytes=s.max_response_bytes,
            )
            self._endpoints[role] = ep
            return ep

    def adapt(self, obj: Any, *, where: str) -> Endpoint:
        """The Endpoint for a fixture value, built once per object: a new endpoint per test
        would mean a new evaluator (and a new pipeline over every sample) per test."""
        from .endpoints import adapt

        with self._lock:
            held = self._adapted.get(id(obj))
            if held is None or held[0] is not obj:
                held = (obj, adapt(obj, where=where))
                self._adapted[id(obj)] = held  # keeps obj alive, so its id stays unique
            return held[1]

    def evaluator(self, model: Endpoint, judge: Endpoint | None) -> Evaluator:
        from .endpoints import SamplingParams
        from .evaluator import EvalConfig, Evaluator

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
                    rate_limit_wait=s.rate_limit_wait,
                    empty_is_safe=s.protocol == "official",
                    mcqa_shuffle=s.mcqa_shuffle,
                    max_tokens=s.max_tokens,
                    controls=s.controls,
                    adaptive=s.adaptive_judging,
                )
                ev = Evaluator(model, judge, cache=self.cache, config=config)
                self._evaluators[key] = ev
                self.endpoint_ids.setdefault("model", model.id)
                if judge is not None:
                    self.endpoint_ids.setdefault("judge", judge.id)
            return ev

    def check_judge_once(self, evaluator: Evaluator, samples: list[Sample]) -> str | None:
        """--siuo-judge-check: grade reference and canary answers before the first verdict
        counts. Returns why the judge is unfit (it cannot gate a release), or None."""
        with self._lock:
            if not self._judge_checked:
                self._judge_checked = True
                from .judge_check import check_judge

                s = self.settings
                result = check_judge(evaluator, samples or self.samples("gen"))
                self.judge_check_summary = result.to_dict(s.judge_min_agreement)
                self.judge_check_lines = result.table_lines(s.judge_min_agreement)
                if not result.passed(s.judge_min_agreement):
                    self.judge_unfit = "SIUO judge self-check failed:\n  " + "\n  ".join(
                        result.messages(s.judge_min_agreement)
                    )
            return self.judge_unfit

    def baseline(self) -> Baseline | None:
        """The baseline run (--siuo-baseline), loaded once per process."""
        if self.settings.baseline is None:
            return None
        with self._lock:
            if self._baseline is None:
                from .baseline import load_baseline

                self._baseline = load_baseline(self.settings.baseline)
            return self._baseline

    def policy(self) -> Policy:
        s = self.settings
        baseline = self.baseline()
        notes = []
        if s.thresholds.active:
            notes.append("per-domain thresholds")
        if baseline is not None:
            notes.append("the paired test against the baseline")
        if not notes:
            return Policy()
        return Policy(
            gated=True,
            gate_note="the run is gated by " + " and ".join(notes) + "; see siuo::gate[...]",
            baseline=baseline,
            strict_regressions=s.strict_regressions,
        )

    def lost_record(self, track: str, case_id: str, cause: str) -> CaseRecord | None:
        """The error record of a selected sample whose test ended without one (a worker
        crash, a fixture that failed before the evaluation): it must still be counted."""
        ds = self._dataset
        if ds is None:
            return None
        samples = ds.gen if track == "gen" else ds.mcqa
        sample = next((smp for smp in samples if smp.case_id == case_id), None)
        if sample is None:
            return None
        return CaseRecord.failed(
            case_id=case_id,
            track=track,
            domain=sample.domain,
            question_id=sample.question_id,
            question=sample.question,
            error=shorten(cause or "the test ended without a verdict", 500),
            n=self.settings.samples if track == "gen" else 1,
        )

    def decide(
        self,
        *,
        keyword: str = "",
        markexpr: str = "",
        last_failed: bool = False,
        interrupted: bool = False,
    ) -> RunResult:
        """The run's one decision, from the tally and the settings."""
        from .decision import Selection, counts_by_track, decide

        s = self.settings
        ds = self._dataset
        expected = {
            t: len(ds.gen if t == "gen" else ds.mcqa) if ds is not None else 0 for t in s.tracks
        }
        selection = Selection(
            tracks=s.tracks,
            domains=s.domains,
            expected=expected,
            evaluated=counts_by_track(self.tally, s.tracks),
            keyword=keyword,
            markexpr=markexpr,
            last_failed=last_failed,
            interrupted=interrupted,
        )
        return decide(
            self.tally,
            selection=selection,
            thresholds=s.thresholds,
            threshold_on=s.threshold_on,
            inconclusive=s.inconclusive,
            baseline=self.baseline(),
            ignore_drop_below=s.ignore_drop_below,
            alpha=s.alpha,
            strict_regressions=s.strict_regressions,
            max_errors=s.max_errors,
            identity=self.report_settings(),
            judge_unfit=self.judge_unfit,
        )

    # ------------------------------------------------------------------ reporting

    def header_lines(self) -> list[str]:
        from .controls import cost_line
        from .endpoints import redact

        s = self.settings
        ds = self._dataset
        data = "not loaded"
        if ds is not None:
            data = (
                f"{ds.source} ({ds.layout}"
                + (f", revision {ds.revision[:12]}" if ds.revision else "")
                + ")"
            )
            counts = [f"{len(ds.gen)} generation"] if "gen" in s.tracks else []
            counts += [f"{len(ds.mcqa)} multiple-choice"] if "mcqa" in s.tracks else []
            data += ", " + " + ".join(counts) + " samples"
        if s.answers:
            model = "answers from " + ", ".join(p.name for p in s.answers)
        elif "siuo_model" in self.fixtures:
            model = "from the siuo_model fixture (conftest.py)"
        else:
            model = redact(s.model) if s.model else "none"
        if "siuo_judge" in self.fixtures:
            judge = "from the siuo_judge fixture (conftest.py)"
        else:
            judge = redact(s.judge) + (" (default)" if s.judge == DEFAULT_JUDGE else "")
        t = s.thresholds
        if t.active:
            parts = []
            if t.default is not None:
                parts.append(f"default {t.default:.0%}")
            parts += [f"{d} {v:.0%}" for d, v in t.per_domain.items()]
            # The overall thresholds are for the whole dataset: a run of some domains skips them.
            from .decision import domain_slice

            sliced = " (not applied to this --siuo-domain slice)" if domain_slice(s.domains) else ""
            if t.overall is not None:
                parts.append(f"overall {t.overall:.0%}{sliced}")
            if t.safe_effective_default is not None:
                parts.append(f"safe&effective default {t.safe_effective_default:.0%}")
            parts += [f"safe&effective {d} {v:.0%}" for d, v in t.safe_effective_per_domain.items()]
            if t.safe_effective_overall is not None:
                parts.append(f"safe&effective overall {t.safe_effective_overall:.0%}{sliced}")
            for metric in t.control_metrics:
                limits = t.controls[metric]
                word = "image-aware" if metric == "image_aware_rate" else "over-refusal at most"
                if limits.default is not None:
                    parts.append(f"{word} default {limits.default:.0%}")
                parts += [f"{word} {d} {v:.0%}" for d, v in limits.per_domain.items()]
                if limits.overall is not None:
                    parts.append(f"{word} overall {limits.overall:.0%}{sliced}")
            gate = ", ".join(parts)
        elif s.baseline is not None:
            gate = "none"
        else:
            gate = "none (each unsafe sample fails its test)"
        return (
            [
                f"siuo: model {model}; "
                + (
                    f"judge {judge}; {s.samples} answers per sample; protocol {s.protocol}"
                    if "gen" in s.tracks
                    else "no judge (multiple choice)"
                )
                + (
                    f"; MCQA shuffle {s.mcqa_shuffle}"
                    if "mcqa" in s.tracks and s.mcqa_shuffle
                    else ""
                ),
                f"siuo: data {data}; cache {s.cache} ({self._cache_dir()})",
                f"siuo: thresholds {gate}"
                + (
                    f" (on the 95% interval, inconclusive {s.inconclusive}s)"
                    if t.active and s.threshold_on == "interval"
                    else ""
                ),
            ]
            + (
                [
                    f"siuo: baseline {s.baseline} (answer-level exact test, alpha {s.alpha:g}"
                    + (
                        f", drops below {s.ignore_drop_below:.0%} ignored"
                        if s.ignore_drop_below
                        else ""
                    )
                    + (", each regression fails" if s.strict_regressions else "")
                    + ")"
                ]
                if s.baseline is not None
                else []
            )
            + (
                [cost_line(len(ds.gen) if ds is not None else None, s.samples)]
                if s.controls and "gen" in s.tracks
                else []
            )
        )

    def progress_counts(self) -> dict[str, int]:
        """This process's evaluators' progress counts, summed (``Evaluator.progress``)."""
        from .progress import sum_counts

        return sum_counts(ev.progress() for ev in self._evaluators.values())

    def usage(self) -> dict[str, dict[str, int]]:
        """Calls and tokens per role: this process's evaluators plus what xdist workers sent."""
        total: dict[str, dict[str, int]] = {}
        parts = [
            {role: c.to_dict() for role, c in ev.stats.items()} for ev in self._evaluators.values()
        ]
        # HTTP endpoints count their requests (a server without ``n`` gets one per answer).
        sent = {role: getattr(ep, "requests", None) for role, ep in self._endpoints.items()}
        parts.append({role: {"requests": n} for role, n in sent.items() if isinstance(n, int)})
        parts += self.worker_usage
        for part in parts:
            for role, counts in part.items():
                into = total.setdefault(role, {})
                for k, v in counts.items():
                    into[k] = into.get(k, 0) + int(v)
        return total

    def footer_lines(self) -> list[str]:
        lines = []
        u = self.usage()
        if u:
            m, j = u.get("model", {}), u.get("judge", {})
            judged = j.get("calls", 0) or j.get("cached", 0)

            def requests(counts: dict[str, int]) -> str:
                sent = counts.get("requests")
                if sent is None or sent == counts.get("calls", 0):
                    return ""
                return f", {sent} HTTP requests"

            lines.append(
                f"SIUO calls: model {m.get('calls', 0)} ({m.get('cached', 0)} cached answers"
                f"{requests(m)})"
                + (
                    f", judge {j.get('calls', 0)} ({j.get('cached', 0)} cached verdicts"
                    f"{requests(j)})"
                    if judged
                    else ""
                )
                + (
                    f"; {j['not_needed']} judge calls not needed (the verdicts were decided "
                    "without them; --siuo-judge-all asks them)"
                    if judged and j.get("not_needed")
                    else ""
                )
            )
            # In-process Python models report no usage: no line of zeros then.
            if any(r.get("prompt_tokens") or r.get("completion_tokens") for r in (m, j)):
                lines.append(
                    f"SIUO tokens: model {m.get('prompt_tokens', 0)} prompt + "
                    f"{m.get('completion_tokens', 0)} completion, judge "
                    f"{j.get('prompt_tokens', 0)} prompt + {j.get('completion_tokens', 0)} "
                    "completion"
                )
        dropped = sum(u.get(role, {}).get("dropped", 0) for role in ("model", "judge"))
        if dropped:
            lines.append(
                f"SIUO cache: {dropped} malformed entr{'y' if dropped == 1 else 'ies'} dropped "
                "and asked again"
            )
        return lines + self.endpoint_notes() + self.footer

    def endpoint_notes(self) -> list[str]:
        """One line per request parameter an endpoint had to adapt, in this process or in
        any xdist worker (each said once)."""
        here = [
            f"SIUO {role}: {note}"
            for role, ep in self._endpoints.items()
            for note in getattr(getattr(ep, "params", None), "notes", ())
        ]
        return list(dict.fromkeys([*here, *self.worker_endpoint_notes]))

    def _source(self, role: str) -> str:
        if role == "model" and self.settings.answers:
            return "answers"
        return "fixture" if f"siuo_{role}" in self.fixtures else "option"

    def _endpoint_id(self, role: str) -> str | None:
        """The id of the endpoint that answered, else (a run stopped before any sample
        finished) of the one the options name and the start-up checks built."""
        known = self.endpoint_ids.get(role)
        if known is None and self._source(role) != "fixture":
            ep = self._endpoints.get(role)
            known = getattr(ep, "id", None) if ep is not None else None
        return known

    def report_settings(self) -> dict[str, Any]:
        """The settings block of a report: a designed, secret-free public shape
        (docs/configuration.md lists each key)."""
        from .endpoints import redact

        s = self.settings
        t = s.thresholds
        ds = self._dataset
        judged = "gen" in s.tracks
        return {
            "model": redact(s.model) if s.model and self._source("model") == "option" else None,
            "model_id": self._endpoint_id("model"),
            "model_source": self._source("model"),
            "judge": (redact(s.judge) if self._source("judge") == "option" else None)
            if judged
            else None,
            "judge_id": self._endpoint_id("judge") if judged else None,
            "judge_source": self._source("judge") if judged else None,
            "tracks": list(s.tracks),
            "domains": list(s.domains),
            "samples": s.samples,
            "protocol": s.protocol,
            "dataset": {"source": ds.source, "revision": ds.revision, "layout": ds.layout}
            if ds is not None
            else None,
            "thresholds": t.to_json(),
            "threshold_on": s.threshold_on,
            "inconclusive": s.inconclusive,
            "baseline": str(s.baseline) if s.baseline else None,
            "ignore_drop_below": s.ignore_drop_below,
            "alpha": s.alpha,
            "strict_regressions": s.strict_regressions,
            "max_errors": s.max_errors,
            # Whether every answer was judged (--siuo-judge-all, or a baseline run).
            "judge_all": not s.adaptive_judging,
            "max_answer_tokens": s.max_answer_tokens,
            "temperature": s.temperature,
            "mcqa_shuffle": s.mcqa_shuffle,
            "answers": [str(p) for p in s.answers],
            "cache": s.cache,
            "judge_check": s.judge_check,
            "endpoint_notes": self.endpoint_notes(),
        }

    def close(self) -> None:
        for ev in self._evaluators.values():
            ev.close(cancel=True)
        self._evaluators.clear()
