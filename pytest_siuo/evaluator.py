"""Evaluator: a bounded-concurrency async pipeline from samples to SampleResults.

sample -> model (N answers) -> judge each answer (safety, effectiveness) -> SampleResult

It runs an asyncio loop in one background thread, so pytest items (which run one after another
on the main thread) can hand over every sample up front and then each wait for its own result.
Every call goes through the cache and through bounded, jittered retries.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import dataclasses
import io
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import judge as judge_prompts
from .cache import Cache, CacheMiss, make_key
from .endpoints import CallError, Completion, Endpoint, Prompt, SamplingParams
from .limiter import AdaptiveLimiter, backoff_delay
from .redact import scrub
from .responses import cached_answer, cached_reply
from .results import ANSWERED, CONTENT_FILTER, EMPTY, ERROR, Answer, SampleResult
from .text import cause_of, visible

if TYPE_CHECKING:
    from .dataset import Sample

JUDGE_PARAMS = SamplingParams(max_tokens=600, temperature=0.0)


@dataclass(frozen=True)
class EvalConfig:
    samples: int = 3
    params: SamplingParams = field(default_factory=SamplingParams)
    concurrency: int = 16
    judge_concurrency: int = 16
    retries: int = 4
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    rate_limit_wait: float = 600.0  # seconds one call may spend waiting out HTTP 429s
    empty_is_safe: bool = False  # the official scripts' rule; --siuo-protocol=official
    judge_effectiveness: bool = True
    mcqa_shuffle: str | None = None  # None, a seed ("7") or "all" (every rotation)
    max_tokens: int | None = None  # token budget: no new call once this many were used
    controls: bool = False  # --siuo-controls: a text-only control per generation sample
    seed: int = 0


@dataclass
class CallStats:
    calls: int = 0  # requests sent (retries included)
    failures: int = 0  # requests that failed
    rate_limited: int = 0  # of those, answered 429 (waited out, then retried)
    cached: int = 0  # answers or verdicts served from the cache
    dropped: int = 0  # malformed cache entries dropped and asked again
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class Evaluator:
    """Evaluate samples concurrently; ``result()`` blocks until one sample is done."""

    def __init__(
        self,
        model: Endpoint,
        judge: Endpoint | None,
        *,
        cache: Cache | None = None,
        config: EvalConfig | None = None,
    ) -> None:
        self.model = model
        self.judge = judge
        self.cache = cache if cache is not None else Cache(Path("."), mode="off")
        self.config = config or EvalConfig()
        self.stats = {"model": CallStats(), "judge": CallStats()}
        self._futures: dict[tuple[str, str], concurrent.futures.Future[SampleResult]] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._rng = random.Random(self.config.seed)
        self._closed = False
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        # Instant endpoints: a loop in the caller's thread, and the results it produced.
        self._here: asyncio.AbstractEventLoop | None = None
        self._done: dict[tuple[str, str], SampleResult] = {}
        self._finished = 0  # samples evaluated (either path)

    # ------------------------------------------------------------------ lifecycle

    def event_loop(self) -> asyncio.AbstractEventLoop:
        """The evaluator's background event loop, started on first use. Work that shares the
        evaluator's limiters and endpoints (the judge self-check) runs its coroutines here."""
        if self._closed:
            raise RuntimeError("evaluator is closed")
        if self._loop is None:
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            self._thread = threading.Thread(target=run, name="siuo-evaluator", daemon=True)
            self._thread.start()
            ready.wait()
            self._loop = loop
            fut = asyncio.run_coroutine_threadsafe(self._make_limiters(), loop)
            fut.result()
        return self._loop

    async def _make_limiters(self) -> None:
        def limit(ep: Endpoint, n: int) -> int:
            own = getattr(ep, "max_concurrency", None)
            return min(n, own) if own else n

        # Samples in flight at once: enough to keep both limiters busy, few enough that the
        # images and prompts held by waiting samples stay small (memory is flat in run size).
        self._slots = asyncio.Semaphore(
            max(4, 2 * max(self.config.concurrency, self.config.judge_concurrency))
        )
        self.model_limiter = AdaptiveLimiter(limit(self.model, self.config.concurrency))
        self.judge_limiter = AdaptiveLimiter(
            limit(self.judge, self.config.judge_concurrency)
            if self.judge is not None
            else self.config.judge_concurrency
        )

    def close(self, *, cancel: bool = True, timeout: float = 10.0) -> None:
        """Cancel outstanding work (``-x``, Ctrl-C, end of session) and stop the loop thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            futures = list(self._futures.values())
        if self._here is not None:
            self._here.run_until_complete(self._here.shutdown_default_executor())
            self._here.close()
        loop = self._loop
        if loop is None:
            return
        if cancel:
            for f in futures:
                f.cancel()

        async def shutdown() -> None:
            for ep in {id(self.model): self.model, id(self.judge): self.judge}.values():
                if ep is None:
                    continue
                aclose = getattr(ep, "aclose", None)
                if aclose is not None:
                    with contextlib.suppress(Exception):  # closing is best effort
                        await aclose()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)
            if not self._thread.is_alive():
                loop.close()

    # ------------------------------------------------------------------ public API

    @property
    def instant(self) -> bool:
        """Both endpoints answer at once on the caller's thread (``siuo_inline``): there is no
        waiting to overlap, and a pipeline thread running ahead would only take turns with
        pytest's thread at the GIL. Such samples are evaluated on demand, in the caller's
        thread."""
        return bool(getattr(self.model, "inline", False)) and (
            self.judge is None or bool(getattr(self.judge, "inline", False))
        )

    def submit(self, samples: Iterable[tuple[str, Sample]]) -> None:
        """Start evaluating ``(track, sample)`` pairs that are not started yet, in order."""
        if self.instant:
            return
        loop = self.event_loop()
        with self._lock:
            for track, sample in samples:
                key = (track, sample.case_id)
                if key not in self._futures:
                    self._futures[key] = asyncio.run_coroutine_threadsafe(
                        self._evaluate(track, sample), loop
                    )

    def result(
        self,
        track: str,
        sample: Sample,
        timeout: float | None = None,
        *,
        on_wait: Callable[[], None] | None = None,
        every: float = 1.0,
    ) -> SampleResult:
        """The sample's result, once done. ``on_wait`` is called every ``every`` seconds
        while it is not (the plugin's progress lines; ``timeout`` then does not apply)."""
        if self.instant:
            return self._result_here(track, sample)
        self.submit([(track, sample)])
        future = self._futures[(track, sample.case_id)]
        if on_wait is None:
            return future.result(timeout)
        while not concurrent.futures.wait([future], timeout=every).done:
            on_wait()
        return future.result()

    def _result_here(self, track: str, sample: Sample) -> SampleResult:
        key = (track, sample.case_id)
        done = self._done.get(key)
        if done is None:
            if self._closed:
                raise RuntimeError("evaluator is closed")
            if self._here is None:
                self._here = asyncio.new_event_loop()
                if not hasattr(self, "model_limiter"):
                    self._here.run_until_complete(self._make_limiters())
            done = self._done[key] = self._here.run_until_complete(self._evaluate(track, sample))
        return done

    def progress(self) -> dict[str, int]:
        """Counts for a progress line: samples handed over and done, calls per role (in flight
        now, sent, failed, rate-limited) and tokens. Read without the loop's lock: a snapshot
        that may be a call behind, which a progress line can afford."""
        # O(1): a worker sends these with every test report.
        counts = {"submitted": len(self._futures) + len(self._done), "done": self._finished}
        for role, stats in self.stats.items():
            limiter = getattr(self, f"{role}_limiter", None)
            counts[f"{role}_in_flight"] = limiter.in_flight if limiter is not None else 0
            counts[f"{role}_calls"] = stats.calls
            counts[f"{role}_cached"] = stats.cached
            counts[f"{role}_failures"] = stats.failures
            counts[f"{role}_rate_limited"] = stats.rate_limited
            counts[f"{role}_tokens"] = stats.prompt_tokens + stats.completion_tokens
        return counts

    def started(self, track: str, sample: Sample) -> bool:
        return (track, sample.case_id) in self._futures or (track, sample.case_id) in self._done

    # ------------------------------------------------------------------ pipeline

    async def _evaluate(self, track: str, sample: Sample) -> SampleResult:
        async with self._slots:
            try:
                result = await self._evaluate_now(track, sample)
            except Exception as exc:
                # Whatever broke (a malformed body, a full cache disk...), the sample ends as
                # an error with a one-line cause: it is counted, never lost.
                result = _broken(track, sample, self.config, exc)
        self._finished += 1  # for progress(): counted here, not by walking every future
        return result

    async def _evaluate_now(self, track: str, sample: Sample) -> SampleResult:
        n = self.config.samples if track == "gen" else 1
        result = SampleResult(
            case_id=sample.case_id,
            track=track,
            question_id=sample.question_id,
            domain=sample.domain,
            question=sample.question,
            n=n,
            empty_is_safe=self.config.empty_is_safe,
            image=sample.image.name,
            safety_warning=sample.safety_warning if track == "gen" else "",
            options=sample.options if track == "mcqa" else None,
            safe_option=sample.correct_option if track == "mcqa" else None,
        )
        # The sample's 7 calls share one read, encoding and decoding of its image, dropped
        # when the sample is done.
        image = SampleImage(sample.image)
        try:
            # Read and check the image up front: a broken image errors its sample alone.
            if self.instant:
                result.image_sha256 = image.sha256
            else:
                result.image_sha256 = await asyncio.to_thread(lambda: image.sha256)
        except Exception as exc:  # ImageError names the sample, the file and the fault
            result.error = str(exc)
            return result
        sample = dataclasses.replace(sample, image=image)  # type: ignore[arg-type]  # duck-typed ImageRef
        if track == "gen":
            await self._evaluate_gen(sample, result)
        else:
            from .mcqa_eval import evaluate_mcqa

            await evaluate_mcqa(self, sample, result)
        return result

    async def _evaluate_gen(self, sample: Sample, result: SampleResult) -> None:
        prompt = Prompt(
            text=sample.question, image=sample.image, sample_key=f"gen:{sample.question_id}"
        )
        try:
            completions = await self.answers(prompt, result, self.config.samples)
        except (CallError, CacheMiss) as exc:
            result.error = f"model: {exc}"
            return
        for i, c in enumerate(completions):
            result.answers.append(_answer(i, c))
        if getattr(self.judge, "inline", False):
            # An inline judge answers synchronously: tasks would only add overhead.
            for a in result.answers:
                await self._judge_answer(sample, result, a)
        else:
            await asyncio.gather(*(self._judge_answer(sample, result, a) for a in result.answers))
        if self.config.controls:
            from .controls import run_control

            await run_control(self, sample, result)

    async def answers(
        self, prompt: Prompt, result: SampleResult, n: int, extra: dict[str, Any] | None = None
    ) -> list[tuple[Completion, bool]]:
        """N answers of the model to ``prompt``: cached ones first, the rest in one call."""
        use_cache = self.model.cacheable and self.cache.mode != "off"
        keys: list[str] = []
        if use_cache:
            base = {
                "kind": "answer",
                "endpoint": self.model.id,
                "params": self.config.params.key(),
                "system": prompt.system,
                "text": prompt.text,
                "image": result.image_sha256,
                **(extra or {}),
            }
            keys = [make_key({**base, "index": i}) for i in range(n)]
        got: list[tuple[Completion, bool] | None] = [None] * n
        if use_cache:
            for i, key in enumerate(keys):
                entry = self.cache.get(key, what=f"answer {i + 1} of {result.case_id}")
                if entry is None:
                    continue
                cached = cached_answer(entry)
                if cached is None:
                    # Never trusted: `{}` would read as an empty (under the official
                    # protocol: safe) answer. Dropped, and the model is asked again.
                    self._drop(key, "model")
                    continue
                got[i] = (Completion(text=cached.text, finish_reason=cached.finish_reason), True)
                self.stats["model"].cached += 1
        missing = [i for i in range(n) if got[i] is None]
        if missing:
            fresh = await self.call("model", prompt, len(missing), self.config.params)
            for i, c in zip(missing, fresh, strict=False):
                got[i] = (c, False)
                result.model_tokens.add(c.prompt_tokens, c.completion_tokens)
                if use_cache and c.finish_reason != "error":
                    self.cache.put(keys[i], {"text": c.text, "finish_reason": c.finish_reason})
        return [g for g in got if g is not None]

    def _drop(self, key: str, role: str) -> None:
        self.cache.drop(key)
        self.stats[role].dropped += 1

    async def call(
        self, role: str, prompt: Prompt, n: int, params: SamplingParams
    ) -> list[Completion]:
        """One logical call with bounded retries; raises the last CallError.

        Faults other than 429 have an attempt budget (``retries``); 429s have a time budget
        (``rate_limit_wait``), spent as the server asks (Retry-After and its variants), since
        a rate limit is a wait, not a fault that more attempts fix."""
        endpoint = self.model if role == "model" else self.judge
        if endpoint is None:
            raise CallError("no judge endpoint: the generation track needs one", retryable=False)
        limiter = self.model_limiter if role == "model" else self.judge_limiter
        stats = self.stats[role]
        attempt = 0  # attempts that failed with something other than a rate limit
        waited = 0.0  # seconds spent waiting out rate limits
        tries = 0
        while True:
            tries += 1
            if self.cache.mode == "replay":
                # Reached only for what the cache cannot hold (an endpoint without siuo_id).
                raise CallError(
                    f"--siuo-cache=replay never calls a model or judge, and {endpoint.id} is "
                    "not cached (a Python object needs a siuo_id attribute to be cached)",
                    retryable=False,
                )
            async with limiter:
                # Checked once a slot is ours, so calls queued behind the limiter see the
                # tokens of the calls that ran before them.
                budget = self.config.max_tokens
                if budget is not None and self.tokens_used() >= budget:
                    raise CallError(
                        f"token budget spent: {self.tokens_used()} of {budget} tokens used "
                        "(--siuo-max-tokens); no new call started",
                        retryable=False,
                    )
                stats.calls += 1
                try:
                    out = await endpoint.complete(prompt, n, params)
                except CallError as exc:
                    stats.failures += 1
                    if exc.rate_limited:
                        stats.rate_limited += 1
                        limiter.rate_limited()
                    error = exc
                else:
                    limiter.succeeded()
                    for c in out:
                        stats.prompt_tokens += c.prompt_tokens or 0
                        stats.completion_tokens += c.completion_tokens or 0
                    return out
            after = f" (after {tries} attempts)" if tries > 1 else ""
            if not error.retryable:
                raise CallError(f"{error}{after}", retryable=False) from None
            if error.rate_limited:
                # Growing backoff, and never less than the server asks for (honoured in full,
                # within the time budget): a server that says "retry after 0" forever must not
                # be hammered for ten minutes.
                delay = backoff_delay(
                    tries,
                    base=self.config.backoff_base,
                    cap=self.config.backoff_cap,
                    retry_after=None,
                    rng=self._rng,
                )
                if error.retry_after is not None:
                    delay = max(
                        delay, error.retry_after + self._rng.uniform(0, self.config.backoff_base)
                    )
                if waited + delay > self.config.rate_limit_wait:
                    raise CallError(
                        f"{error}{after}; waited {waited:.0f} s of "
                        f"--siuo-rate-limit-wait={self.config.rate_limit_wait:g}",
                        retryable=False,
                    ) from None
                waited += delay
            else:
                attempt += 1
                if attempt > self.config.retries:
                    raise CallError(f"{error}{after}", retryable=False) from None
                delay = backoff_delay(
                    attempt,
                    base=self.config.backoff_base,
                    cap=self.config.backoff_cap,
                    retry_after=error.retry_after,
                    rng=self._rng,
                )
            await asyncio.sleep(delay)

    async def _judge_answer(self, sample: Sample, result: SampleResult, answer: Answer) -> None:
        if answer.status != ANSWERED:
            return
        text = answer.text or ""
        args = {
            "question": sample.question,
            "safety_warning": sample.safety_warning,
            "reference_answer": sample.reference_answer,
            "answer": text,
        }
        jobs = [self._verdict(judge_prompts.safety_prompt(**args), sample, result)]
        if self.config.judge_effectiveness:
            jobs.append(self._verdict(judge_prompts.effectiveness_prompt(**args), sample, result))
        if getattr(self.judge, "inline", False):
            outcomes = [await job for job in jobs]
        else:
            outcomes = await asyncio.gather(*jobs)
        safety = outcomes[0]
        if isinstance(safety, str):
            answer.error = f"judge (safety): {safety}"
        else:
            answer.safe, answer.safety_reason = safety.safe, safety.reason
        if len(outcomes) > 1:
            eff = outcomes[1]
            if isinstance(eff, str):
                answer.error = answer.error or f"judge (effectiveness): {eff}"
            else:
                answer.effectiveness, answer.effective = eff.level, eff.effective
                answer.effectiveness_reason = eff.reason

    async def safety_verdict(
        self, jp: judge_prompts.JudgePrompt, sample: Sample, result: SampleResult
    ) -> Any:
        """The judge's verdict on one prompt through cache and retries, or why there is none
        (a string). Public for the judge self-check."""
        return await self._verdict(jp, sample, result)

    async def _verdict(
        self, jp: judge_prompts.JudgePrompt, sample: Sample, result: SampleResult
    ) -> Any:
        """The judge's parsed verdict, or a string saying why there is none.

        An unreadable reply is asked again once, with a reminder of the format; a reply that
        still cannot be read is a judge error, never a verdict.
        """
        parse = (
            judge_prompts.parse_safety if jp.kind == "safety" else judge_prompts.parse_effectiveness
        )
        if self.judge is None:
            return "no judge endpoint: the generation track needs one"
        use_cache = self.judge.cacheable and self.cache.mode != "off"
        key = ""
        if use_cache:
            key = make_key(
                {
                    "kind": "verdict",
                    "judge": self.judge.id,
                    "version": judge_prompts.JUDGE_PROMPT_VERSION,
                    "verdict_kind": jp.kind,
                    "system": jp.system,
                    "user": jp.user,
                    "image": result.image_sha256,
                    "params": JUDGE_PARAMS.key(),
                }
            )
            try:
                entry = self.cache.get(key, what=f"{jp.kind} verdict for {result.case_id}")
            except CacheMiss as exc:
                return str(exc)
            if entry is not None:
                reply = cached_reply(entry)
                if reply is None:
                    self._drop(key, "judge")
                else:
                    try:
                        verdict = parse(reply, jp)
                    except judge_prompts.VerdictParseError:
                        pass  # e.g. a prompt format change: judge again
                    else:
                        self.stats["judge"].cached += 1
                        return verdict
        if not use_cache:
            return await self._ask_judge(jp, sample, result, key="")
        pending = self._inflight.get(key)
        if pending is not None:
            # The same prompt (an identical answer) is being judged right now: share that call,
            # so the number of calls does not depend on timing.
            self.stats["judge"].cached += 1
            return await asyncio.shield(pending)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            value = await self._ask_judge(jp, sample, result, key=key)
        except BaseException:
            fut.cancel()
            raise
        finally:
            self._inflight.pop(key, None)
        fut.set_result(value)
        return value

    async def _ask_judge(
        self, jp: judge_prompts.JudgePrompt, sample: Sample, result: SampleResult, *, key: str
    ) -> Any:
        parse = (
            judge_prompts.parse_safety if jp.kind == "safety" else judge_prompts.parse_effectiveness
        )
        prompt = Prompt(
            text=jp.user, system=jp.system, image=sample.image, response_format=jp.response_format
        )
        last = ""
        for _attempt in range(2):
            try:
                replies = await self.call("judge", prompt, 1, JUDGE_PARAMS)
            except CallError as exc:
                return str(exc)
            reply = replies[0]
            result.judge_tokens.add(reply.prompt_tokens, reply.completion_tokens)
            try:
                verdict = parse(reply.text or "", jp)
            except judge_prompts.VerdictParseError as exc:
                last = str(exc)
                prompt = Prompt(
                    text=jp.user + "\n\nYour previous reply could not be read. Reply with the "
                    "JSON object only, as specified above.",
                    system=jp.system,
                    image=sample.image,
                    response_format=jp.response_format,
                )
                continue
            if key:
                self.cache.put(key, {"reply": reply.text})
            return verdict
        return f"unreadable judge reply (asked twice): {last}"

    # ------------------------------------------------------------------ figures

    def tokens_used(self) -> int:
        return sum(c.prompt_tokens + c.completion_tokens for c in self.stats.values())


class SampleImage:
    """An ImageRef read once for one sample's calls: its bytes (checked by the ImageRef on that
    read), data URL and decoded image are computed once and dropped with the sample."""

    def __init__(self, ref: Any) -> None:
        self._ref = ref
        self.name = ref.name
        self._lock = threading.Lock()
        self._bytes: bytes | None = None
        self._url: str | None = None
        self._pil: Any = None

    def read_bytes(self) -> bytes:
        with self._lock:
            if self._bytes is None:
                self._bytes = self._ref.read_bytes()
            return self._bytes

    @property
    def sha256(self) -> str:
        self.read_bytes()
        return str(self._ref.sha256)

    @property
    def mime(self) -> str:
        self.read_bytes()
        return str(self._ref.mime)

    def data_url(self) -> str:
        data = self.read_bytes()
        with self._lock:
            if self._url is None:
                self._url = f"data:{self._ref.mime};base64,{base64.b64encode(data).decode()}"
            return self._url

    def pil(self) -> Any:
        data = self.read_bytes()
        with self._lock:
            if self._pil is None:
                # The bytes passed the ImageRef's checks (decodable, no decompression bomb)
                # when they were read: decode them, rather than reading the file again.
                from PIL import Image

                image = Image.open(io.BytesIO(data))
                image.load()
                self._pil = image
            return self._pil


def _broken(track: str, sample: Sample, config: EvalConfig, exc: Exception) -> SampleResult:
    return SampleResult(
        case_id=sample.case_id,
        track=track,
        question_id=sample.question_id,
        domain=sample.domain,
        question=sample.question,
        n=config.samples if track == "gen" else 1,
        error=f"evaluation failed: {visible(scrub(cause_of(exc)))}",
    )


def _answer(index: int, item: tuple[Completion, bool]) -> Answer:
    c, cached = item
    text = c.text
    if c.finish_reason == "content_filter":
        status = CONTENT_FILTER
    elif text is None or not text.strip():
        status = EMPTY
    else:
        status = ANSWERED
    return Answer(
        index=index,
        text=text,
        status=status,
        cached=cached,
        error=None if status != ERROR else "error",
    )
