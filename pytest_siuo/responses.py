"""The one validator of what servers send back: completion bodies, model lists, token usage,
and the cache entries that hold them.

Every body is decoded and shape-checked here, nowhere else. Anything malformed (truncated,
empty, an HTML page, invalid UTF-8, a lone surrogate, ``choices`` of the wrong shape, a
``message`` that is a string, negative token counts) raises :class:`BodyError` with one line
saying what came back; the endpoint makes it a retryable fault. Malformed data is never read as
"no answer": under ``--siuo-protocol=official`` an empty answer counts as safe.

Plain Python on bytes, no HTTP library: usable and testable on its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .redact import scrub
from .text import shorten, visible

__all__ = [
    "BodyError",
    "Choice",
    "Usage",
    "cached_answer",
    "cached_reply",
    "completion",
    "describe",
    "model_ids",
    "server_message",
]


class BodyError(Exception):
    """A response body that is not what it should be; the message is one line."""


@dataclass(frozen=True)
class Choice:
    text: str | None
    finish_reason: str | None


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def describe(raw: bytes) -> str:
    """What a body that is not the expected JSON is, in a few words (for messages)."""
    stripped = raw.strip()
    if not stripped:
        return "an empty body"
    head = stripped[:512].lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<body" in head or b"<head" in head:
        m = _TITLE.search(stripped[:4096])
        title = ""
        if m:
            title = " titled " + repr(shorten(m.group(1).decode("utf-8", "replace"), 60))
        return f"an HTML page{visible(scrub(title))}"
    try:
        text = stripped.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"bytes that are not UTF-8 (at byte {exc.start})"
    try:
        value = json.loads(text)
    except RecursionError:
        return "JSON nested too deeply to read"
    except ValueError:
        if text[0] in "{[" and text[-1] not in "}]":
            return f"truncated JSON ({len(raw)} bytes, cut off before the end)"
        return f"text that is not JSON: {visible(scrub(shorten(text, 60)))!r}"
    return "JSON " + _kind(value)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        keys = ", ".join(sorted(map(str, value))[:5])
        return f"object with keys {{{keys}}}" if keys else "empty object {}"
    if isinstance(value, list):
        return f"list of {len(value)} items"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return type(value).__name__


def decode(raw: bytes) -> Any:
    """The JSON value of a body; BodyError saying what came back otherwise."""
    try:
        text = raw.decode("utf-8")
        return json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BodyError(f"the body is {describe(raw)}, not JSON") from None


def _string(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BodyError(f"{where} is a JSON {_kind(value)}, not a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BodyError(f"{where} holds a lone surrogate ({value[exc.start]!a})") from None
    return value


def tokens(value: Any, where: str) -> int | None:
    """A token count: absent is None; anything but a non-negative integer is a fault (a
    negative count would defeat --siuo-max-tokens)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BodyError(f"{where} is {shorten(json.dumps(value), 40)}, not a count of tokens")
    return value


def completion(raw: bytes, n: int, *, max_chars: int | None = None) -> tuple[list[Choice], Usage]:
    """The ``n`` choices and the usage of a chat-completion body, checked."""
    body = decode(raw)
    if not isinstance(body, dict):
        raise BodyError(f"the body is a JSON {_kind(body)}, not a chat completion")
    choices = body.get("choices")
    if not isinstance(choices, list):
        what = "missing" if choices is None else f"a JSON {_kind(choices)}"
        raise BodyError(f"'choices' is {what}, not a list: not a chat completion")
    if len(choices) != n:
        raise BodyError(f"{len(choices)} choices, expected {n}")
    out: list[tuple[int, Choice]] = []
    for i, choice in enumerate(choices):
        if not isinstance(choice, dict):
            raise BodyError(f"choices[{i}] is a JSON {_kind(choice)}, not an object")
        message = choice.get("message")
        if not isinstance(message, dict):
            what = "missing" if message is None else f"a JSON {_kind(message)}"
            raise BodyError(f"choices[{i}].message is {what}, not an object")
        text = _string(message.get("content"), f"choices[{i}].message.content")
        if text is not None and max_chars is not None and len(text) > max_chars:
            raise BodyError(f"answer of {len(text)} characters, more than the cap of {max_chars}")
        reason = choice.get("finish_reason")
        index = choice.get("index", i)
        out.append(
            (
                index if isinstance(index, int) and not isinstance(index, bool) else i,
                Choice(
                    text=scrub(text) if text else text,
                    finish_reason=reason if isinstance(reason, str) else None,
                ),
            )
        )
    usage = body.get("usage")
    if usage is None:
        usage = {}
    if not isinstance(usage, dict):
        raise BodyError(f"'usage' is a JSON {_kind(usage)}, not an object")
    return [c for _, c in sorted(out, key=lambda p: p[0])], Usage(
        tokens(usage.get("prompt_tokens"), "usage.prompt_tokens"),
        tokens(usage.get("completion_tokens"), "usage.completion_tokens"),
    )


def model_ids(raw: bytes) -> list[str]:
    """The ids of a ``GET /models`` body (``{"data": [{"id": ...}, ...]}``)."""
    try:
        body = decode(raw)
    except BodyError:
        raise BodyError(describe(raw)) from None
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise BodyError("JSON " + _kind(body))
    ids = []
    for item in data:
        mid = item.get("id") if isinstance(item, dict) else None
        if not isinstance(mid, str):
            raise BodyError("a model list whose entries have no string 'id'")
        ids.append(mid)
    return ids


def server_message(raw: bytes, limit: int = 200) -> str:
    """The server's own words from an error body (``error.message`` when it is JSON), on one
    line, scrubbed of secrets and escape sequences."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        text = raw.decode("utf-8", "replace")
        if describe(raw).startswith("an HTML page"):
            return describe(raw)
    else:
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            err = err.get("message")
        if err is None and isinstance(body, dict):
            err = body.get("message") or body.get("detail")
        text = err if isinstance(err, str) else json.dumps(body, ensure_ascii=False)
    return visible(shorten(scrub(text), limit))


def cached_answer(entry: Any) -> Choice | None:
    """A cached answer, or None when the entry is not of the shape the cache writes
    (``{"text": str | null, "finish_reason": str | null}``)."""
    if not isinstance(entry, dict) or "text" not in entry:
        return None
    text, reason = entry.get("text"), entry.get("finish_reason")
    if not (text is None or isinstance(text, str)) or not (
        reason is None or isinstance(reason, str)
    ):
        return None
    if reason == "error":
        return None
    try:
        _string(text, "text")
    except BodyError:
        return None
    return Choice(text=scrub(text) if text else text, finish_reason=reason)


def cached_reply(entry: Any) -> str | None:
    """A cached judge reply (``{"reply": str}``), or None for an entry of another shape."""
    if not isinstance(entry, dict):
        return None
    reply = entry.get("reply")
    if not isinstance(reply, str) or not reply.strip():
        return None
    try:
        _string(reply, "reply")
    except BodyError:
        return None
    return scrub(reply)
