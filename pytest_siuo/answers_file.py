"""Answers files in the official SIUO results format, in and out.

The official scripts write each dataset row with a ``responses`` list of the model's answers.
``--siuo-save-answers`` writes that format from a run; ``--siuo-answers`` judges answers from
such a file instead of calling a model, so a team with its own batch inference (or with results
made by the official scripts) can judge and gate them here. A row with ``options`` is a
multiple-choice (MCQA) row; any other row is a generation row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .endpoints import CallError, Completion, Prompt, SamplingParams
from .errors import AnswersFileError as AnswersFileError  # re-exported: raised here
from .files import atomic_write

if TYPE_CHECKING:
    from .dataset import Dataset, Sample

MAX_REPORTED = 20



@dataclass
class AnswersFile:
    paths: list[Path]
    gen: dict[str, list[str]] = field(default_factory=dict)
    mcqa: dict[str, list[str]] = field(default_factory=dict)
    digest: str = ""

    def for_track(self, track: str) -> dict[str, list[str]]:
        return self.gen if track == "gen" else self.mcqa


def _qid(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.strip()):
        return str(value).strip()
    return None


def load_answers(
    paths: Sequence[Path], dataset: Dataset, *, samples: int, mcqa_answers: int = 1
) -> AnswersFile:
    """Read and check answers files against the dataset; every bad row is reported at once."""
    known = {
        "gen": {s.question_id for s in dataset.gen},
        "mcqa": {s.question_id for s in dataset.mcqa},
    }
    out = AnswersFile(paths=list(paths))
    digest = hashlib.sha256()
    problems: list[str] = []
    for path in paths:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise AnswersFileError(
                f"answers file {path}: cannot read it ({exc.strerror}); check the path given to "
                "--siuo-answers"
            ) from None
        digest.update(raw)
        try:
            rows = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise AnswersFileError(
                f"answers file {path}: not UTF-8 (byte {exc.start}); save it as UTF-8"
            ) from None
        except json.JSONDecodeError as exc:
            raise AnswersFileError(
                f"answers file {path}: not JSON ({exc.msg} at line {exc.lineno} column "
                f"{exc.colno}); expected a list of rows with question_id and responses"
            ) from None
        except RecursionError:
            raise AnswersFileError(
                f"answers file {path}: JSON nested too deeply to read; expected a list of rows "
                "with question_id and responses"
            ) from None
        if not isinstance(rows, list):
            raise AnswersFileError(
                f"answers file {path}: the top level is a {type(rows).__name__}; expected a "
                "list of rows, each with question_id and responses (the official results format)"
            )
        for i, row in enumerate(rows, start=1):
            where = f"answers file {path} row {i}"
            if not isinstance(row, dict):
                problems.append(f"{where}: not an object; each row must be a JSON object {{...}}")
                continue
            qid = _qid(row.get("question_id"))
            if qid is None:
                problems.append(
                    f"{where}: no usable question_id; give each row the question_id of its "
                    "dataset sample"
                )
                continue
            where += f" (question_id {qid})"
            track = "mcqa" if "options" in row else "gen"
            expected = samples if track == "gen" else mcqa_answers
            responses = row.get("responses")
            if responses is None and isinstance(row.get("response"), str):
                responses = [row["response"]]
            if not isinstance(responses, list):
                problems.append(
                    f"{where}: 'responses' is missing or not a list of strings; give the "
                    "model's answers as a list of texts"
                )
                continue
            bad = [j for j, r in enumerate(responses) if r is not None and not isinstance(r, str)]
            if bad:
                problems.append(
                    f"{where}: responses[{bad[0]}] is not text "
                    f"({type(responses[bad[0]]).__name__}); every answer must be text (or null "
                    "for no answer)"
                )
                continue
            if len(responses) != expected:
                option = "--siuo-samples" if track == "gen" else "--siuo-mcqa-shuffle"
                problems.append(
                    f"{where}: {len(responses)} responses, but this run needs {expected} per "
                    f"{'sample' if track == 'gen' else 'MCQA sample'} ({option})"
                )
                continue
            if qid not in known[track]:
                problems.append(
                    f"{where}: no {track} sample with this question_id in the dataset "
                    "(is the file from another dataset, or is a domain filter on?)"
                )
                continue
            table = out.for_track(track)
            if qid in table:
                problems.append(
                    f"{where}: a second row for this question_id; keep one row per "
                    "question_id (put all its answers in that row's responses)"
                )
                continue
            table[qid] = responses
    if problems:
        more = len(problems) - MAX_REPORTED
        listed = problems[:MAX_REPORTED] + ([f"... and {more} more"] if more > 0 else [])
        raise AnswersFileError("bad answers file:\n  " + "\n  ".join(listed))
    out.digest = digest.hexdigest()
    return out


class AnswersEndpoint:
    """A 'model' that reads its answers from an answers file instead of generating them."""

    cacheable = False  # the file is the record; nothing to cache
    max_concurrency: int | None = None

    def __init__(self, answers: AnswersFile) -> None:
        self.answers = answers
        names = ",".join(p.name for p in answers.paths)
        self.id = f"answers:{names}@{answers.digest[:12]}"

    async def complete(self, prompt: Prompt, n: int, params: SamplingParams) -> list[Completion]:
        track, _, qid = (prompt.sample_key or "").partition(":")
        responses = self.answers.for_track(track).get(qid)
        if responses is None:
            files = ", ".join(str(p) for p in self.answers.paths)
            raise CallError(f"no answers for {track} question_id {qid} in {files}", retryable=False)
        if n > len(responses):
            raise CallError(
                f"{len(responses)} answers for question_id {qid}, {n} needed", retryable=False
            )
        return [Completion(text=r) for r in responses[len(responses) - n :]]


def answer_rows(
    records: Iterable[Mapping[str, Any]], samples: Mapping[tuple[str, str], Sample], track: str
) -> list[dict[str, Any]]:
    """Rows in the official results format: the dataset row plus ``responses``."""
    rows = []
    for rec in records:
        if rec.get("track") != track or not rec.get("answers"):
            continue
        sample = samples.get((track, str(rec["question_id"])))
        row: dict[str, Any] = {
            "question_id": _official_id(rec["question_id"]),
            "image": rec.get("image", ""),
            "question": rec["question"],
            "category": rec["domain"],
        }
        if sample is not None and track == "gen":
            row["safety_warning"] = sample.safety_warning
            row["reference_answer"] = sample.reference_answer
        if sample is not None and track == "mcqa":
            row["options"] = dict(sample.options or {})
            row["correct_option"] = sample.correct_option
        row["responses"] = [a.get("text") for a in rec["answers"]]
        rows.append(row)
    return rows


def _official_id(qid: str) -> int | str:
    return int(qid) if qid.isdigit() else qid


def write_json(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write atomically: a cancelled run never leaves half a file."""
    atomic_write(path, json.dumps(rows, ensure_ascii=False, indent=2) + "\n")


def mcqa_path(path: Path) -> Path:
    """Where the MCQA answers go next to the generation answers file."""
    return path.with_name(f"{path.stem}_mcqa{path.suffix or '.json'}")
