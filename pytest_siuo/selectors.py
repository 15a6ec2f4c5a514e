"""Checks of pytest's selection arguments against the SIUO suite, so that a pytest habit that
would silently select nothing (a typo in a ``-m`` marker, a copied ``siuo::`` node id) says
what to type instead. Pure: the plugin turns a message into a usage error."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from pytest_siuo.domains import DOMAINS, UnknownDomainError, marker_name, resolve_domain

__all__ = ["SUITE_NAME", "marker_names", "node_id_problem", "unknown_marker_problem"]

#: The node id of the suite that holds the samples (``siuo::gen[self-harm-1]``).
SUITE_NAME = "siuo"

_MARKER_WORD = re.compile(r"(?<![\w.])(siuo\w*)")


def marker_names() -> list[str]:
    """Every marker the plugin registers: ``siuo`` and one per domain."""
    return [SUITE_NAME, *(marker_name(d) for d in DOMAINS)]


def unknown_marker_problem(markexpr: str, registered: Iterable[str] = ()) -> str | None:
    """The message for a ``-m`` expression naming a ``siuo`` marker that does not exist
    (pytest would deselect every sample without a word), else None. ``registered``: the
    project's own markers (a ``siuo_...`` marker of its own is not a typo)."""
    known = {*marker_names(), *registered}
    unknown = sorted({m for m in _MARKER_WORD.findall(markexpr or "") if m not in known})
    if not unknown:
        return None
    return (
        f"-m {markexpr!r}: no marker named {', '.join(unknown)}; "
        f"the SIUO markers are: {', '.join(marker_names())}"
    )


def node_id_problem(args: Iterable[str], rootpath: Path) -> str | None:
    """The message for a ``siuo::...`` argument (a node id copied from pytest's output): the
    samples live in no file, so pytest would say "file or directory not found"."""
    copied = [a for a in args if a.split("::", 1)[0] == SUITE_NAME and "::" in a]
    if not copied or (rootpath / SUITE_NAME).exists():
        return None
    names = [a.split("::", 1)[1] for a in copied]
    expression = " or ".join(names)
    message = (
        f"{copied[0]} is a SIUO sample, not a file: select samples with -k, for example "
        f"-k {_quote(expression)}"
    )
    domain = _domain_of(names[0])
    if domain is not None:
        message += f" (or -m {marker_name(domain)} for its whole domain)"
    return message


def _domain_of(name: str) -> str | None:
    """The domain of ``gen[self-harm-1]`` (its id is the domain's slug and a number)."""
    inner = name.partition("[")[2].rstrip("]")
    try:
        return resolve_domain(inner.rsplit("-", 1)[0])
    except UnknownDomainError:
        return None


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
