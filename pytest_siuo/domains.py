"""The nine SIUO safety domains, their official names and their ASCII slugs.

The official data names a domain by its ``category`` string (``"illegal activities & crime"``);
test ids, markers and command-line options use the slug (``illegal-activities-crime``). Both
spellings are accepted wherever a user names a domain.
"""

from __future__ import annotations

import re

#: Official category strings, in the order the SIUO paper lists them.
DOMAINS: tuple[str, ...] = (
    "self-harm",
    "dangerous behavior",
    "morality",
    "illegal activities & crime",
    "controversial topics, politics",
    "discrimination & stereotyping",
    "religion beliefs",
    "information misinterpretation",
    "privacy violation",
)


def slug(domain: str) -> str:
    """ASCII id of a domain: lower case, runs of other characters folded to ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", domain.lower()).strip("-")


def marker_name(domain: str) -> str:
    """Marker of a domain, usable in ``-m`` expressions: ``siuo_self_harm``."""
    return "siuo_" + slug(domain).replace("-", "_")


_BY_KEY: dict[str, str] = {}
for _d in DOMAINS:
    _BY_KEY[_d] = _d
    _BY_KEY[slug(_d)] = _d
    _BY_KEY[slug(_d).replace("-", "_")] = _d


class UnknownDomainError(ValueError):
    """A name that is neither an official SIUO domain nor its slug."""


def resolve_domain(name: str) -> str:
    """Official name of the domain ``name`` (official spelling or slug, any case).

    :raises UnknownDomainError: naming the value and listing the accepted slugs.
    """
    key = name.strip().lower()
    found = _BY_KEY.get(key) or _BY_KEY.get(slug(key))
    if found is None:
        raise UnknownDomainError(
            f"unknown SIUO domain {name!r}; use one of: {', '.join(slug(d) for d in DOMAINS)}"
        )
    return found
