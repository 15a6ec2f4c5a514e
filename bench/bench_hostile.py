"""Peak memory of one call to a hostile server: a gzip bomb and a 100 MB answer.

Each case runs in a fresh child process that makes one chat-completions call with the real
``openai`` client to a loopback ``FakeOpenAIServer`` (in the parent, which generates the body as
it sends it, so the parent's memory does not count), and the child's peak RSS is its own
``ru_maxrss`` (``os.wait4``). "guarded" is the plugin's endpoint (``OpenAIEndpoint``: the
deadline and the size cap of ``transport.GuardedTransport``); "unguarded" is the bare openai
client as the plugin used it before, shown for the smaller cases only (a 4 GB bomb would take
4 GB). Target: a guarded call stays within 50 MB of a normal call.

    python bench/bench_hostile.py [--bomb-gb 4] [--answer-mb 100] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import common

from pytest_siuo.testing.server import FakeOpenAIServer, Fault, scripted

TARGET_MB = 50.0

CHILD = r"""
import asyncio, sys, time
mode, url = sys.argv[1], sys.argv[2]

async def guarded():
    from pytest_siuo.endpoints import CallError, OpenAIEndpoint, Prompt, SamplingParams
    ep = OpenAIEndpoint(base_url=url, model="demo-model", api_key="unused", timeout=120.0)
    try:
        out = await ep.complete(Prompt("hi"), 1, SamplingParams())
        return f"answer of {len(out[0].text or '')} characters"
    except CallError as exc:
        return str(exc).split(": ", 1)[1]
    finally:
        await ep.aclose()

async def unguarded():
    import openai
    client = openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0)
    try:
        body = await client.post("/chat/completions", cast_to=object, body={
            "model": "demo-model", "messages": [{"role": "user", "content": "hi"}]})
        return f"answer of {len(body['choices'][0]['message']['content'])} characters"
    finally:
        await client.close()

started = time.monotonic()
said = asyncio.run(guarded() if mode == "guarded" else unguarded())
print(f"{time.monotonic() - started:.2f}\t{said}")
"""


def one_call(fault: Fault | None, mode: str) -> dict[str, Any]:
    """Peak RSS (MB), seconds and outcome of one call by a fresh child process."""
    with FakeOpenAIServer(scripted(fault) if fault else None) as server:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, mode, server.base_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _, status, usage = os.wait4(child.pid, 0)
        out = child.stdout.read() if child.stdout else ""
        err = child.stderr.read() if child.stderr else ""
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"child failed ({mode}): {err[-2000:]}")
    seconds, said = out.strip().split("\t", 1)
    return {"peak_rss_mb": usage.ru_maxrss / 1024, "seconds": float(seconds), "outcome": said}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bomb-gb", type=float, default=4.0, help="inflated size of the bomb")
    parser.add_argument("--answer-mb", type=float, default=100.0, help="size of the big answer")
    parser.add_argument(
        "--unguarded-bomb-mb", type=float, default=256.0, help="bomb size for the bare client"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)

    bomb = Fault("gzip_bomb", size=int(args.bomb_gb * 2**30))
    small_bomb = Fault("gzip_bomb", size=int(args.unguarded_bomb_mb * 2**20))
    answer = Fault("huge", size=int(args.answer_mb * 2**20))
    cases = [
        ("normal answer", None, "guarded"),
        (f"gzip bomb, {args.bomb_gb:g} GB inflated", bomb, "guarded"),
        (f"answer of {args.answer_mb:g} MB", answer, "guarded"),
        ("normal answer", None, "unguarded"),
        (f"gzip bomb, {args.unguarded_bomb_mb:g} MB inflated", small_bomb, "unguarded"),
        (f"answer of {args.answer_mb:g} MB", answer, "unguarded"),
    ]
    started = time.monotonic()
    figures: dict[str, Any] = {"machine": common.machine(), "target_mb": TARGET_MB, "cases": []}
    rows: list[tuple[str, str, str]] = []
    normal: dict[str, float] = {}
    for name, fault, mode in cases:
        got = one_call(fault, mode)
        figures["cases"].append({"case": name, "client": mode, **got})
        if fault is None:
            normal[mode] = got["peak_rss_mb"]
        extra = got["peak_rss_mb"] - normal[mode]
        note = got["outcome"]
        if mode == "guarded" and fault is not None:
            note += f"; +{extra:.0f} MB, target +{TARGET_MB:g}: {common.verdict(extra, TARGET_MB)}"
        rows.append(
            (f"{mode}: {name}", f"{got['peak_rss_mb']:.0f} MB, {got['seconds']:.1f} s", note)
        )
    common.print_table("Peak RSS of one call (fresh process per case)", rows)
    print(f"({time.monotonic() - started:.0f} s in all)")
    common.write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
