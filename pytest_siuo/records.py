"""The case record: what one evaluated sample leaves behind, in every process and every file.

A worker builds one :class:`CaseRecord` per sample, sends it as JSON on the pytest report
(``to_json``), and the controller reads it back once (``from_json``), where it is checked;
the tally, the decision and every report then use the typed record. The names of tracks and
outcomes live here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_siuo.domains import UnknownDomainError, resolve_domain

__all__ = [
    "CONTROL_CLASSES",
    "ERROR",
    "NOT_NEEDED",
    "NO_ANSWER",
    "OUTCOMES",
    "SAFE",
    "TRACKS",
    "UNSAFE",
    "CaseRecord",
    "ControlRecord",
    "RecordError",
    "Votes",
]

#: Tracks in report order: generation (judged answers) and multiple choice.
TRACKS: tuple[str, ...] = ("gen", "mcqa")

# Sample outcomes (after the vote); "error" means no verdict.
SAFE = "safe"
UNSAFE = "unsafe"
NO_ANSWER = "no_answer"
ERROR = "error"
OUTCOMES: tuple[str, ...] = (SAFE, UNSAFE, NO_ANSWER, ERROR)
#: The vote of an answer the judge was not asked about (adaptive judging): never an outcome.
NOT_NEEDED = "not_needed"


#: Control classes of a generation sample run with ``--siuo-controls`` (see controls.py).
IMAGE_AWARE = "image-aware"
OVER_REFUSING = "over-refusing"
BLIND = "blind"
OTHER = "other"
CONTROL_CLASSES: tuple[str, ...] = (IMAGE_AWARE, OVER_REFUSING, BLIND, OTHER)


class RecordError(ValueError):
    """A case record that lacks a field or carries a value that cannot be counted."""


def _count(where: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RecordError(f"{where}: field {name!r} is {value!r}; use a count (0 or more)")
    return value


def _optional_text(where: str, name: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise RecordError(f"{where}: field {name!r} is {value!r}; use a string or null")
    return value


def _objects(where: str, name: str, value: object) -> tuple[Mapping[str, Any], ...]:
    """A list of objects (answers), ``[]`` for a missing one."""
    items = value or []
    if not isinstance(items, list) or not all(isinstance(a, Mapping) for a in items):
        raise RecordError(f"{where}: field {name!r} must be a list of objects")
    return tuple(items)


@dataclass(frozen=True)
class Votes:
    """How the N answers (or MCQA presentations) of one sample voted."""

    safe: int = 0
    unsafe: int = 0
    no_answer: int = 0
    error: int = 0
    #: Answers the judge was not asked about: the sample's verdicts were decided without them.
    not_needed: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "safe": self.safe,
            "unsafe": self.unsafe,
            "no_answer": self.no_answer,
            "error": self.error,
            # Only when some answer was not judged: a run judging every answer keeps its shape.
            **({NOT_NEEDED: self.not_needed} if self.not_needed else {}),
        }

    @classmethod
    def from_json(cls, value: object, where: str) -> Votes:
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise RecordError(f"{where}: field 'votes' is {value!r}; use an object of counts")
        return cls(
            **{
                name: _count(where, f"votes.{name}", value.get(name, 0))
                for name in (*OUTCOMES, NOT_NEEDED)
            }
        )


@dataclass(frozen=True)
class ControlRecord:
    """The text-only control of one generation sample: the same question, no image.

    ``refused`` is the majority of the answers graded "refusal" (or not answered) by the
    effectiveness judge, None while a missing grade could decide it. ``cls`` is one of
    :data:`CONTROL_CLASSES`, or None when the sample or its control has no verdict.
    """

    n: int
    refused: bool | None
    cls: str | None
    answers: tuple[Mapping[str, Any], ...] = ()
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "refused": self.refused,
            "class": self.cls,
            "answers": [dict(a) for a in self.answers],
            "error": self.error,
        }

    @classmethod
    def from_json(cls, value: object, where: str) -> ControlRecord | None:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise RecordError(f"{where}: field 'control' is {value!r}; use an object or null")
        refused = value.get("refused")
        if refused is not None and not isinstance(refused, bool):
            raise RecordError(f"{where}: field 'control.refused' is {refused!r}; use a boolean")
        klass = value.get("class")
        if klass is not None and klass not in CONTROL_CLASSES:
            raise RecordError(
                f"{where}: field 'control.class' is {klass!r}; use one of: "
                f"{', '.join(CONTROL_CLASSES)} or null"
            )
        answers = _objects(where, "control.answers", value.get("answers"))
        error = _optional_text(where, "control.error", value.get("error"))
        return cls(
            n=_count(where, "control.n", value.get("n", 0)),
            refused=refused,
            cls=klass,
            answers=answers,
            error=error,
        )


@dataclass(frozen=True)
class CaseRecord:
    """One sample of one track after evaluation: outcome, votes, answers, cause of an error.

    ``answers`` and ``tokens`` are kept in their JSON form: the reports show them as they are.
    """

    case_id: str
    track: str
    domain: str  # the official domain name
    outcome: str
    question_id: str = ""
    question: str = ""
    safety_warning: str = ""
    safe: bool | None = None
    effective: bool | None = None
    safe_effective: bool | None = None
    votes: Votes = field(default_factory=Votes)
    n: int = 0
    reason: str = ""
    error: str | None = None
    answers: tuple[Mapping[str, Any], ...] = ()
    tokens: Mapping[str, Any] | None = None
    image: str = ""
    image_sha256: str | None = None
    #: The text-only control (``--siuo-controls``, generation only); None when not run.
    control: ControlRecord | None = None
    options: Mapping[str, str] | None = None  # MCQA: letter -> text, official order
    safe_option: str | None = None  # MCQA: the letter of the safe option

    @classmethod
    def failed(
        cls,
        *,
        case_id: str,
        track: str,
        domain: str,
        question_id: str = "",
        question: str = "",
        error: str,
        n: int = 0,
    ) -> CaseRecord:
        """The record of a sample whose evaluation broke: an error outcome with its cause."""
        return cls(
            case_id=case_id,
            track=track,
            domain=resolve_domain(domain),
            outcome=ERROR,
            question_id=question_id,
            question=question,
            error=error,
            n=n,
            votes=Votes(error=n),
        )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types, the shape of a report's ``cases`` entries."""
        return {
            "case_id": self.case_id,
            "track": self.track,
            "question_id": self.question_id,
            "domain": self.domain,
            "question": self.question,
            **({"safety_warning": self.safety_warning} if self.safety_warning else {}),
            "outcome": self.outcome,
            "safe": self.safe,
            "effective": self.effective,
            "safe_effective": self.safe_effective,
            "votes": self.votes.to_json(),
            "n": self.n,
            "reason": self.reason,
            "error": self.error,
            "answers": [dict(a) for a in self.answers],
            "tokens": dict(self.tokens) if self.tokens is not None else None,
            "image": self.image,
            "image_sha256": self.image_sha256,
            # Only with --siuo-controls: a run without controls keeps the report it had.
            **({"control": self.control.to_json()} if self.control is not None else {}),
            **({"options": dict(self.options)} if self.options else {}),
            **({"safe_option": self.safe_option} if self.safe_option else {}),
        }

    @classmethod
    def from_json(cls, record: object) -> CaseRecord:
        """Check a record read from a report or another process; :class:`RecordError` names
        the case and the field at fault."""
        if isinstance(record, CaseRecord):
            return record
        if not isinstance(record, Mapping):
            raise RecordError(f"a SIUO case record must be an object, got {type(record).__name__}")
        case_id = record.get("case_id")
        if not isinstance(case_id, str) or not case_id:
            raise RecordError(
                f"SIUO case record has no usable 'case_id' (got {case_id!r}); "
                "set it to '<domain-slug>-<question_id>'"
            )
        where = f"SIUO case record {case_id!r}"
        track = record.get("track")
        if track not in TRACKS:
            raise RecordError(
                f"{where}: field 'track' is {track!r}; use one of: {', '.join(TRACKS)}"
            )
        outcome = record.get("outcome")
        if outcome not in OUTCOMES:
            raise RecordError(
                f"{where}: field 'outcome' is {outcome!r}; use one of: {', '.join(OUTCOMES)}"
            )
        domain = record.get("domain")
        if not isinstance(domain, str):
            raise RecordError(f"{where}: field 'domain' is {domain!r}; use an official SIUO domain")
        try:
            official = resolve_domain(domain)
        except UnknownDomainError as exc:
            raise RecordError(f"{where}: field 'domain': {exc}") from None
        flags: dict[str, bool | None] = {}
        for name in ("safe", "effective", "safe_effective"):
            value = record.get(name)
            if value is not None and not isinstance(value, bool):
                raise RecordError(f"{where}: field {name!r} is {value!r}; use true, false or null")
            flags[name] = value

        def text(name: str) -> str:
            value = record.get(name)
            if value is None:
                return ""
            if not isinstance(value, str):
                raise RecordError(f"{where}: field {name!r} is {value!r}; use a string")
            return value

        error = _optional_text(where, "error", record.get("error"))
        answers = _objects(where, "answers", record.get("answers"))
        tokens = record.get("tokens")
        if tokens is not None and not isinstance(tokens, Mapping):
            raise RecordError(f"{where}: field 'tokens' is {tokens!r}; use an object or null")
        sha = record.get("image_sha256")
        options = record.get("options")
        if options is not None and not (
            isinstance(options, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in options.items())
        ):
            raise RecordError(f"{where}: field 'options' must map option letters to texts")
        return cls(
            case_id=case_id,
            track=str(track),
            domain=official,
            outcome=str(outcome),
            question_id=text("question_id"),
            question=text("question"),
            safety_warning=text("safety_warning"),
            safe=flags["safe"],
            effective=flags["effective"],
            safe_effective=flags["safe_effective"],
            votes=Votes.from_json(record.get("votes"), where),
            n=_count(where, "n", record.get("n", 0)),
            reason=text("reason"),
            error=error,
            answers=answers,
            tokens=tokens,
            image=text("image"),
            image_sha256=sha if isinstance(sha, str) else None,
            control=ControlRecord.from_json(record.get("control"), where),
            options=dict(options) if options else None,
            safe_option=text("safe_option") or None,
        )
