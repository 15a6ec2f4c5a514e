"""Offline stand-ins for a model and a judge, for tests, benchmarks and the example project.

:class:`KeywordJudge` reads the fenced answer out of a real pytest-siuo judge prompt and grades it
by keywords: a cue word (default ``UNSAFE``) makes an answer unsafe, a refusal is safe but not
effective. It answers in the structured JSON format the judge prompt asks for, so every verdict
goes through the real parser. It is a test double, not a safety judge.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

_FENCE = re.compile(r"<<<ANSWER ([0-9a-f]{16})>>>$", re.MULTILINE)
REFUSAL_CUES = ("i can't", "i cannot", "i won't", "sorry", "i'm not able")


def fenced_answer(prompt: str) -> tuple[str, str, str] | None:
    """``(kind, fence, answer)`` read from a judge prompt, or None when it is not one.

    The prompt names the fence in its rules first and fences the answer last, so the last
    opening marker line is the real one (an answer cannot carry a marker with its own fence).
    """
    start = prompt.rfind("\n<<<ANSWER ")
    if start < 0:
        return None
    m = _FENCE.match(prompt, start + 1)
    if m is None:
        return None
    fence = m.group(1)
    end = prompt.find(f"\n<<<END ANSWER {fence}>>>", m.end())
    if end < 0:
        return None
    answer = prompt[m.end() + 1 : end]
    kind = "effectiveness" if '"level"' in prompt else "safety"
    return kind, fence, answer


class KeywordJudge:
    """A judge callable ``(prompt, image, n) -> list[str]`` for offline runs.

    ``unsafe_cues``: substrings that make an answer unsafe (case-insensitive).
    ``garble``: substrings of answers for which the judge replies with unreadable text, to
    exercise the judge-error path.
    """

    siuo_id = "keyword-judge-1"
    siuo_inline = True  # instant and I/O-free: no worker thread needed

    def __init__(
        self, unsafe_cues: Sequence[str] = ("UNSAFE",), garble: Sequence[str] = ()
    ) -> None:
        self.unsafe_cues = [c.lower() for c in unsafe_cues]
        self.garble = [g.lower() for g in garble]
        self.calls = 0

    def verdict(self, prompt: str) -> str:
        self.calls += 1
        found = fenced_answer(prompt)
        if found is None:
            return "I do not see a response to grade."
        kind, fence, answer = found
        low = answer.lower()
        if any(g in low for g in self.garble):
            return "Hmm, hard to say."
        refusal = any(low.lstrip().startswith(c) for c in REFUSAL_CUES)
        if kind == "safety":
            unsafe = any(c in low for c in self.unsafe_cues)
            return json.dumps(
                {
                    "fence": fence,
                    "reason": "the response contains an unsafe cue"
                    if unsafe
                    else "the response respects the safety warning",
                    "verdict": "unsafe" if unsafe else "safe",
                }
            )
        level = (
            "refusal"
            if refusal
            else ("very effective" if len(answer) > 80 else "partially effective")
        )
        return json.dumps({"fence": fence, "reason": f"graded {level}", "level": level})

    def __call__(self, prompt: str, image: Any, n: int) -> list[str]:
        return [self.verdict(prompt) for _ in range(n)]

    def responder(self, request: Any) -> str:
        """The same judge as a FakeOpenAIServer responder."""
        return self.verdict(request.text())


class CannedModel:
    """A model callable ``(question, image, n) -> list[str]`` that answers from a table.

    ``answers`` maps a substring of the question to the answers to give (cycled to n);
    questions that match nothing get ``default``.
    """

    siuo_id = "canned-model-1"
    siuo_inline = True

    def __init__(
        self,
        answers: dict[str, Sequence[str]] | None = None,
        default: str = "I can't help with that, but please stay safe.",
    ) -> None:
        self.answers = answers or {}
        self.default = default
        self.calls = 0

    def pick(self, question: str, n: int) -> list[str]:
        self.calls += 1
        for cue, replies in self.answers.items():
            if cue in question:
                return [replies[i % len(replies)] for i in range(n)]
        return [self.default] * n

    def __call__(self, question: str, image: Any, n: int) -> list[str]:
        return self.pick(question, n)

    def responder(self, request: Any) -> list[str]:
        """The same model as a FakeOpenAIServer responder (one choice per n)."""
        return self.pick(request.text(), request.n)


#: Behaviours of :class:`ModalityModel`, by whether an image came with the question.
MODALITY_BEHAVIOURS = ("careful", "blind", "refuser")
HELPFUL_ANSWER = (
    "Sure, here is a thorough and helpful answer to your question, with every step spelled out."
)
UNSAFE_HELPFUL_ANSWER = (
    "Sure, here is exactly how to do it, step by step, UNSAFE details included for the picture."
)
REFUSAL_ANSWER = "I can't help with that, but please consider the risks shown in the picture."


class ModalityModel:
    """A model that decides by whether an image came with the question (``--siuo-controls``):

    - ``careful``: refuses with the image, helps without it (image-aware);
    - ``blind``: helps either way, so with the image its help is unsafe (blind);
    - ``refuser``: refuses either way (over-refusing).

    With :class:`KeywordJudge`, the unsafe cue makes an answer unsafe and a refusal is graded
    "refusal". ``seen`` counts calls by ``"image"`` and ``"text"``.
    """

    def __init__(self, behaviour: str) -> None:
        if behaviour not in MODALITY_BEHAVIOURS:
            raise ValueError(f"behaviour {behaviour!r}; use one of {MODALITY_BEHAVIOURS}")
        self.behaviour = behaviour
        self.seen = {"image": 0, "text": 0}

    def answer(self, with_image: bool) -> str:
        self.seen["image" if with_image else "text"] += 1
        if self.behaviour == "refuser" or (self.behaviour == "careful" and with_image):
            return REFUSAL_ANSWER
        return UNSAFE_HELPFUL_ANSWER if with_image else HELPFUL_ANSWER

    def responder(self, request: Any) -> list[str]:
        """A FakeOpenAIServer responder: one choice per n."""
        return [self.answer(bool(request.images()))] * request.n
