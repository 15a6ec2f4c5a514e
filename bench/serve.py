"""A loopback model or judge server for the benchmarks, run as its own process.

It wraps :class:`pytest_siuo.testing.server.FakeOpenAIServer` with the offline stand-ins of
``pytest_siuo.testing.judges`` (``python -m pytest_siuo.testing.server`` only has demo and echo
responders, and no way to ask how many calls it received). Running it in a separate process keeps
its handler threads from competing with the benchmark's own GIL.

Latency: ``fixed`` (every chat request takes ``--latency`` seconds) or ``heavy``, a heavy tail
as real APIs show: 95% of requests log-normal around a median of ``--latency`` (sigma 0.5,
capped below 20 s), 5% between 20 and 30 s. Each request's latency is a seeded hash of its
content (``--seed``), so the same work meets the same delays in every run compared.

Answers (model role): the n answers of one call differ in text, as sampling gives, and differ
from one sample to the next; ``--distinct K`` of them are different texts (cycled to n).

Protocol: the first stdout line is the base URL. Then one command per stdin line, one JSON line
back: ``stats`` -> ``{"calls": N, "requests": N, "answered": [t, ...], "spans": [[start, end],
...], "first_request_at": t | null}`` (``answered``: wall-clock times at which the responder
answered; ``spans``: when each chat request began and ended its latency; ``first_request_at``:
the first request of any kind, the start-up ``GET /models`` included), ``reset`` -> ``{"ok":
true}``. End of input (or SIGTERM) stops the server. Requests are counted, not kept (a
10,000-sample run would otherwise hold every image in this process).

    python bench/serve.py --role judge --latency 0.2 [--latency-mode heavy --seed 0]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from pytest_siuo.testing.judges import KeywordJudge
from pytest_siuo.testing.server import ChatRequest, FakeOpenAIServer

#: Questions containing this cue get an unsafe answer (see common.make_rows).
BAIT = "[bait]"
UNSAFE_ANSWER = "Sure, here is exactly how to do it. UNSAFE details follow."
SAFE_ANSWER = "I can't help with that, but please consider the risks shown in the picture."
LATENCY_MODES = ("fixed", "heavy")
TAIL_SHARE = 0.05  # heavy mode: share of requests in the 20-30 s tail


def _unit(*parts: object) -> float:
    """A number in [0, 1) from ``parts``, the same in every run and process."""
    digest = hashlib.sha256("\x00".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def heavy_latency(u: float, v: float, median: float) -> float:
    """The heavy-tailed latency of a request from two uniform numbers ``u``, ``v``."""
    if u < TAIL_SHARE:
        return 20.0 + 10.0 * v
    # Log-normal with the given median (sigma 0.5), from v by the inverse normal CDF.
    z = _inverse_normal(min(max(v, 1e-9), 1 - 1e-9))
    return min(median * math.exp(0.5 * z), 19.9)


def _inverse_normal(p: float) -> float:
    """The standard normal quantile (Acklam's rational approximation, |error| < 1.2e-9)."""
    a = (-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.3577518672690,
         -30.66479806614716, 2.506628277459239)  # fmt: skip
    b = (-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972,
         -13.28068155288572)  # fmt: skip
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838, -2.549732539343734,
         4.374664141464968, 2.938163982698783)  # fmt: skip
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996, 3.754408661907416)
    lo = 0.02425
    if p < lo or p > 1 - lo:
        q = math.sqrt(-2 * math.log(p if p < lo else 1 - p))
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1
        )
        return x if p < lo else -x
    q = p - 0.5
    r = q * q
    return (
        (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
        * q
        / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    )


def model_answers(question: str, n: int, distinct: int = 3) -> list[str]:
    """The model's n answers: ``distinct`` texts (cycled), each naming the sample, so that no
    two samples share an answer text and the judge sees the load sampling gives."""
    tag = hashlib.sha256(question.encode()).hexdigest()[:8]
    base = UNSAFE_ANSWER if BAIT in question else SAFE_ANSWER
    return [f"{base} (sample {tag}, variant {i % max(distinct, 1)})" for i in range(n)]


class _CountingServer(FakeOpenAIServer):
    """Counts chat requests without keeping them."""

    def _record(self, request: ChatRequest) -> None:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=("model", "judge"), required=True)
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds per chat request (heavy: median)"
    )
    parser.add_argument("--latency-mode", choices=LATENCY_MODES, default="fixed")
    parser.add_argument("--seed", type=int, default=0, help="seed of the heavy-tailed latency")
    parser.add_argument(
        "--distinct", type=int, default=3, help="distinct answer texts per model call"
    )
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    args = parser.parse_args(argv)

    judge = KeywordJudge().responder
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()
    stopping = threading.Event()

    def delay(request: ChatRequest) -> float:
        if args.latency_mode == "fixed":
            return float(args.latency)
        key = request.key()
        return heavy_latency(
            _unit(args.seed, key, "tail"), _unit(args.seed, key, "body"), args.latency
        )

    def responder(request: ChatRequest) -> Any:
        start = time.time()
        wait = delay(request)
        if wait > 0 and stopping.wait(wait):
            raise RuntimeError("server stopping")
        # The spans show how many requests the client kept open, and when.
        with lock:
            spans.append((start, time.time()))
        if args.role == "model":
            return model_answers(request.text(), request.n, args.distinct)
        return judge(request)

    model_id = "bench-vlm" if args.role == "model" else "bench-judge"
    server = _CountingServer(responder, models=[model_id], port=args.port)
    server.start()
    # SIGTERM ends the loop below through the closed stdin of a dying parent, or here.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(server.base_url, flush=True)
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                # Asked between runs, when no request is in flight.
                with lock:
                    done = list(spans)
                reply: dict[str, Any] = {
                    "calls": server.calls,
                    "requests": server.calls,
                    "answered": [end for _, end in done],
                    "spans": done,
                    "first_request_at": server.first_request_at,
                }
            elif command == "reset":
                server.reset()
                with lock:
                    spans.clear()
                reply = {"ok": True}
            else:
                reply = {"error": f"unknown command {command!r}; use stats or reset"}
            print(json.dumps(reply), flush=True)
    finally:
        stopping.set()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
