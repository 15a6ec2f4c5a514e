"""The run's one redactor: every text that comes from a server passes through :func:`scrub`
before it is stored, cached, logged or printed.

It knows the run's secrets, registered where they are read (each API key in use, the password
of a ``user:password@`` URL and the Basic-auth base64 of ``user:password``, credentials in a
URL's query string), and it removes whatever looks like a credential whoever sent it
(``Bearer …``/``Basic …`` tokens, credential query parameters, ``user:password@`` in URLs). A
gateway that echoes the request's ``Authorization`` header in an error body or an answer then
leaks nothing into the terminal, the reports, the answers file or the cache.

Secrets live in this process only (each xdist worker registers the keys it uses itself).
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

__all__ = ["REDACTED", "add_secret", "add_url", "install_log_filter", "scrub", "url"]

REDACTED = "<redacted>"
# Shorter values would be found inside ordinary words; such a "key" protects nothing anyway.
MIN_SECRET = 4

# Query parameter names that carry credentials (api_key, key, token, sig, password, ...).
_CRED_NAME = (
    r"(?:[\w.-]*(?:key|token|secret|passw(?:or)?d|pwd|auth|sig|signature|credential)[\w.-]*)"
)
_QUERY_CRED = re.compile(rf"(?i)([?&;]{_CRED_NAME}=)[^&#\s\"'<>]+")
# The value of an Authorization header, whatever its scheme ("Authorization: Bearer sk-..."),
_AUTH_HEADER = re.compile(
    r"(?i)(\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token)\s+)?)"
    r"(?!<redacted>|(?:bearer|basic|token)\b)[^\s\"'<>,;]{4,}"
)
# and a Bearer/Basic credential anywhere: 8+ characters with a digit, so that prose ("basic
# steps", "bearer bonds") is left alone.
_AUTH_TOKEN = re.compile(r"(?i)\b(bearer|basic)(\s+)(?=[\w.~+/=-]*\d)[A-Za-z0-9._~+/=-]{8,}")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s\"'<>]+@")

_lock = threading.Lock()
_secrets: set[str] = set()
_ordered: tuple[str, ...] = ()


def add_secret(value: str | None) -> None:
    """Remember ``value`` (a key, a password) as a secret of this run."""
    global _ordered
    if not value or len(value) < MIN_SECRET:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        # Longest first, so a secret that contains another is removed whole.
        _ordered = tuple(sorted(_secrets, key=len, reverse=True))


def add_url(spec: str | None) -> None:
    """Remember the credentials an endpoint URL carries: its password, the base64 of
    ``user:password`` that Basic auth sends, and credential values in its query string."""
    if not spec or "://" not in spec:
        return
    try:
        parts = urlsplit(spec.partition("#")[0])
        password = parts.password
        username = parts.username
    except ValueError:
        return
    if password is not None:
        user, pw = unquote(username or ""), unquote(password)
        add_secret(pw)
        add_secret(password)
        add_secret(base64.b64encode(f"{user}:{pw}".encode()).decode())
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if re.fullmatch(_CRED_NAME, name, flags=re.IGNORECASE):
            add_secret(value)


def scrub(text: str) -> str:
    """``text`` with every known secret and every credential-shaped token replaced."""
    if not text:
        return text
    for secret in _ordered:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _AUTH_HEADER.sub(lambda m: m.group(1) + REDACTED, text)
    text = _AUTH_TOKEN.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _QUERY_CRED.sub(lambda m: m.group(1) + REDACTED, text)
    return _USERINFO.sub(lambda m: m.group(1) + "***@", text)


def url(spec: str) -> str:
    """An endpoint spec fit to show: ``user:password@`` becomes ``***@`` and credential
    values in the query string become ``<redacted>``."""
    if "://" not in spec:
        return spec
    base, hash_, fragment = spec.partition("#")
    try:
        parts = urlsplit(base)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return scrub(spec)
    netloc = parts.netloc
    if parts.username is not None or parts.password is not None:
        netloc = "***@" + host + (f":{port}" if port else "")
    shown = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return _QUERY_CRED.sub(lambda m: m.group(1) + REDACTED, shown) + hash_ + fragment


class _ScrubFilter(logging.Filter):
    """Rewrites a record's message through :func:`scrub` (httpx logs each request's URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_filter = _ScrubFilter()


def install_log_filter() -> None:
    """Scrub what the HTTP libraries log (idempotent)."""
    for name in ("httpx", "httpx2", "httpcore", "httpcore2", "openai"):
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)
