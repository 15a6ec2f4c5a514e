"""Which request parameters an OpenAI-compatible endpoint takes, learned once per endpoint.

OpenAI's current models (the gpt-5 family, the o-series reasoning models) reject
``max_tokens`` ("use 'max_completion_tokens' instead") and any ``temperature`` but the default;
older servers (vLLM, TGI, Ollama) know only ``max_tokens``, and some ignore a parameter they do
not know, so sending both is no answer either. :class:`ParamPolicy` starts from what the host
and the model name say, and on a 400 that names one of these parameters it renames or drops it
once, remembers that for the run, and says so in one line (:attr:`ParamPolicy.notes`).

The default judge is a dated snapshot that OpenAI will retire; :func:`check_default_judge`
turns "the server does not list it" into one usage error that names an alternative it does
list, instead of an error on every sample.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from .errors import EndpointError

__all__ = ["ParamPolicy", "check_default_judge", "is_openai_host", "is_reasoning_model"]

#: Model families that take ``max_completion_tokens`` and only the default temperature.
_REASONING = re.compile(r"^(?:o\d+(?:[-.].*)?|gpt-5(?:[-.].*)?)$")
#: Their chat variants accept a temperature (gpt-5-chat-latest).
_CHAT_VARIANT = re.compile(r"-chat\b")
#: Judges to name when the default is gone, in order of preference: vision models with
#: structured output (pytest-siuo's own prompts need no particular one).
JUDGE_ALTERNATIVES: tuple[str, ...] = ("gpt-4.1-mini", "gpt-4o-mini", "gpt-5-mini", "gpt-4.1")


def _bare_model(model: str) -> str:
    # LiteLLM and other proxies prefix the provider: "openai/gpt-5-mini", "azure/o3-mini".
    return model.rsplit("/", 1)[-1].strip().lower()


def is_reasoning_model(model: str) -> bool:
    """A gpt-5 or o-series model name (provider prefixes ignored)."""
    return bool(_REASONING.match(_bare_model(model)))


def is_openai_host(base_url: str | None) -> bool:
    """OpenAI itself (no base URL, or api.openai.com) or Azure OpenAI."""
    if base_url is None:
        return True
    host = (urlsplit(base_url).hostname or "").lower()
    return host == "api.openai.com" or host.endswith(".openai.azure.com")


class ParamPolicy:
    """The token-limit parameter name and whether ``temperature`` is sent, for one endpoint."""

    def __init__(self, *, base_url: str | None, model: str) -> None:
        reasoning = is_reasoning_model(model)
        self.token_param = (
            "max_completion_tokens" if reasoning or is_openai_host(base_url) else "max_tokens"
        )
        self.send_temperature = not (reasoning and not _CHAT_VARIANT.search(model))
        self.model = _bare_model(model)
        #: One line per adaptation, for the run's closing lines and the report.
        self.notes: list[str] = []
        self._adapted: set[str] = set()
        self._lock = threading.Lock()

    def apply(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The request body with the parameter names this endpoint takes."""
        out = self._rewrite(kwargs)
        if "temperature" in kwargs and "temperature" not in out:
            with self._lock:
                if "temperature-note" not in self._adapted:
                    self._adapted.add("temperature-note")
                    self.notes.append(
                        f"{self.model} takes only its default temperature: sent without "
                        f"temperature={kwargs['temperature']:g}, so it ran unseeded at its "
                        "default (1)"
                    )
        return out

    def _rewrite(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        out = dict(kwargs)
        limit = out.pop("max_tokens", None)
        if "max_completion_tokens" in out:
            limit = out.pop("max_completion_tokens")
        if limit is not None:
            out[self.token_param] = limit
        if not self.send_temperature:
            out.pop("temperature", None)
        return out

    def adapt(self, sent: dict[str, Any], error: Any) -> bool:
        """Learn from a 400 answer to ``sent``; True when the request is worth sending again.

        Each parameter is adapted at most once per endpoint, so a server that rejects both
        names does not make the calls go back and forth.
        """
        param, code, message = _error_fields(error)
        with self._lock:
            if self._rewrite(sent) != sent:
                return True  # another call has already adapted the policy
            for name in ("max_tokens", "max_completion_tokens"):
                if name in sent and name not in self._adapted and _rejects(name, param, message):
                    other = "max_completion_tokens" if name == "max_tokens" else "max_tokens"
                    self._adapted |= {"max_tokens", "max_completion_tokens"}
                    self.token_param = other
                    self.notes.append(f"the server rejected {name}: sent {other} instead")
                    return True
            if (
                "temperature" in sent
                and "temperature" not in self._adapted
                and (param == "temperature" or "temperature" in message)
                and (code in ("unsupported_value", "unsupported_parameter") or "support" in message)
            ):
                self._adapted |= {"temperature", "temperature-note"}
                self.send_temperature = False
                self.notes.append(
                    f"the server rejected temperature={sent['temperature']:g}: sent without "
                    "one from then on, so it ran unseeded at the model's default"
                )
                return True
        return False


def _error_fields(error: Any) -> tuple[str | None, str | None, str]:
    """``param``, ``code`` and the lower-cased message of an openai.BadRequestError."""
    param = getattr(error, "param", None)
    code = getattr(error, "code", None)
    body = getattr(error, "body", None)
    message = str(body.get("message", "")) if isinstance(body, dict) else ""
    return (
        param if isinstance(param, str) else None,
        code if isinstance(code, str) else None,
        (message or str(error)).lower(),
    )


def _rejects(name: str, param: str | None, message: str) -> bool:
    if param == name:
        return True
    # Servers that give no param: "Unrecognized request argument supplied: max_completion_tokens",
    # "Unsupported parameter: 'max_tokens' ...", "extra fields not permitted" (pydantic).
    quoted = re.search(rf"(?<![a-z_]){name}(?![a-z_])", message) is not None
    return quoted and any(
        word in message
        for word in (
            "unsupported",
            "unrecognized",
            "unknown",
            "not permitted",
            "not supported",
            "extra",
            "instead",
        )
    )


def check_default_judge(
    model: str, listed: Sequence[str] | None, *, where: str, server: str
) -> None:
    """Raise EndpointError when the server's model list lacks the default judge ``model``.

    ``listed`` is what ``GET /models`` returned (None or empty: unknown, nothing to say).
    """
    if not listed or model in listed:
        return
    available = [m for m in JUDGE_ALTERNATIVES if m in listed]
    suggestion = (
        f"--siuo-judge={available[0]}, which {server} lists"
        if available
        else "--siuo-judge=MODEL with a vision model that " + server + " lists (GET /v1/models)"
    )
    raise EndpointError(
        f"{where}: the default judge {model} is not served by {server} (retired, or not "
        f"available to this key); choose the judge with {suggestion}"
    )
