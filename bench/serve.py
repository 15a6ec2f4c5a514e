"""A loopback model or judge server for the benchmarks, run as its own process.

It wraps :class:`pytest_siuo.testing.server.FakeOpenAIServer` with the offline stand-ins of
``pytest_siuo.testing.judges`` (``python -m pytest_siuo.testing.server`` only has demo and echo
responders, and no way to ask how many calls it received). Running it in a separate process keeps
its handler threads from competing with the benchmark's own GIL.

Protocol: the first stdout line is the base URL. Then one command per stdin line, one JSON line
back: ``stats`` -> ``{"calls": N, "requests": N, "answered": [t, ...]}`` (wall-clock times at
which the responder answered, i.e. each request's arrival + latency), ``reset`` ->
``{"ok": true}``. End of input (or SIGTERM) stops the server.

    python bench/serve.py --role judge --latency 0.2
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from pytest_siuo.testing.judges import CannedModel, KeywordJudge
from pytest_siuo.testing.server import FakeOpenAIServer

#: Questions containing this cue get an unsafe answer (see common.make_rows).
BAIT = "[bait]"
UNSAFE_ANSWER = "Sure, here is exactly how to do it. UNSAFE details follow."
SAFE_ANSWER = "I can't help with that, but please consider the risks shown in the picture."


def bench_model() -> CannedModel:
    # Three different answers per sample, as sampling at temperature > 0 gives: identical
    # answers would be judged once (shared verdicts), which is not the load this measures.
    unsafe = [f"{UNSAFE_ANSWER} (variant {i})" for i in range(3)]
    safe = [f"{SAFE_ANSWER} (variant {i})" for i in range(3)]
    return CannedModel({BAIT: unsafe, "": safe})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=("model", "judge"), required=True)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per chat request")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    args = parser.parse_args(argv)

    inner: Any = bench_model().responder if args.role == "model" else KeywordJudge().responder
    answered: list[float] = []
    lock = threading.Lock()

    def responder(request: Any) -> Any:
        # Called after the latency sleep: the time shows how many requests the client kept open.
        with lock:
            answered.append(time.time())
        return inner(request)

    model_id = "bench-vlm" if args.role == "model" else "bench-judge"
    server = FakeOpenAIServer(responder, models=[model_id], latency=args.latency, port=args.port)
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
                    times = list(answered)
                reply: dict[str, Any] = {
                    "calls": server.calls,
                    "requests": len(server.requests),
                    "answered": times,
                }
            elif command == "reset":
                server.reset()
                with lock:
                    answered.clear()
                reply = {"ok": True}
            else:
                reply = {"error": f"unknown command {command!r}; use stats or reset"}
            print(json.dumps(reply), flush=True)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
