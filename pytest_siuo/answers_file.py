"""Answers files in the official SIUO results formats, in and out.

The official scripts write the dataset rows with the model's answers added: a generation row
carries ``responses`` (a list of texts), an MCQA row ``response_mcqa`` (one text). The official
generation scripts write one such row per file (``output_<idx>-<question_id>.json``, a single
JSON object), their merged results a list of rows.

``--siuo-save-answers`` writes these formats from a run; ``--siuo-answers`` judges answers from
such files (a list of rows, one row per file, several files or a folder of them) instead of
calling a model, so a team with its own batch inference, or with results of the official
scripts, can judge and gate them here. A row with ``options`` or ``response_mcqa`` is an MCQA
row; any other row is a generation row.

The official scripts need text for every answer (``gpt-eval.py`` fails on ``null``), so an
answer without text is saved as ``""``; the status that tells an empty answer from a stopped one
is kept in our own field ``siuo_statuses``, which the official scripts ignore.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .endpoints import CallError, Completion, Prompt, SamplingParams
from .errors import AnswersFileError as AnswersFileError  # re-exported: raised here
from .files import atomic_write

if TYPE_CHECKING:
    from .dataset import Dataset, Sample

MAX_REPORTED = 20

#: Our own field: the status of each answer, in the order of the row's answers.
STATUSES_FIELD = "siuo_statuses"
#: Statuses a file may carry; only ``content_filter`` changes how a text is read back (the
#: others follow from the text itself).
_STATUSES = ("answered", "empty", "content_filter", "unparsed")


@dataclass
class AnswersFile:
    paths: list[Path]
    gen: dict[str, list[Completion]] = field(default_factory=dict)
    mcqa: dict[str, list[Completion]] = field(default_factory=dict)
    digest: str = ""

    def for_track(self, track: str) -> dict[str, list[Completion]]:
        return self.gen if track == "gen" else self.mcqa


def _qid(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.strip()):
        return str(value).strip()
    return None


def _files(path: Path) -> list[Path]:
    """The JSON files a ``--siuo-answers`` value names: the file, or a folder's ``*.json``."""
    if path.is_dir():
        found = sorted(p for p in path.glob("*.json") if p.is_file())
        if not found:
            raise AnswersFileError(
                f"answers folder {path}: no .json files in it; give a folder of answers files "
                "(e.g. the official generation script's output_*.json) or a file"
            )
        return found
    return [path]


def _read(path: Path) -> tuple[bytes, list[Any]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AnswersFileError(
            f"answers file {path}: cannot read it ({exc.strerror}); check the path given to "
            "--siuo-answers"
        ) from None
    try:
        data = json.loads(raw.decode("utf-8"))
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
    if isinstance(data, dict) and "question_id" in data:
        return raw, [data]  # one row per file, as the official generation scripts write
    if not isinstance(data, list):
        raise AnswersFileError(
            f"answers file {path}: the top level is a {type(data).__name__} without a "
            "question_id; expected a list of rows, or one row, each with question_id and "
            "responses (or response_mcqa), as the official scripts write"
        )
    return raw, data


def _answers(row: Mapping[str, Any], where: str) -> tuple[str, list[Completion]] | str:
    """The row's track and answers, or what is wrong with the row."""
    track = "mcqa" if "options" in row or "response_mcqa" in row else "gen"
    responses = row.get("responses")
    if responses is None and isinstance(row.get("response_mcqa"), str):
        responses = [row["response_mcqa"]]
    if responses is None and isinstance(row.get("response"), str):
        responses = [row["response"]]
    if not isinstance(responses, list):
        if track == "mcqa":
            return (
                f"{where}: neither 'response_mcqa' (the answer's text) nor 'responses' (a list "
                "of texts); give the model's answer"
            )
        return (
            f"{where}: 'responses' is missing or not a list of strings; give the "
            "model's answers as a list of texts"
        )
    bad = [j for j, r in enumerate(responses) if r is not None and not isinstance(r, str)]
    if bad:
        return (
            f"{where}: responses[{bad[0]}] is not text ({type(responses[bad[0]]).__name__}); "
            "every answer must be text (or null for no answer)"
        )
    statuses = row.get(STATUSES_FIELD)
    if statuses is None:
        statuses = [None] * len(responses)
    elif (
        not isinstance(statuses, list)
        or len(statuses) != len(responses)
        or any(s not in _STATUSES for s in statuses)
    ):
        return (
            f"{where}: '{STATUSES_FIELD}' must list one status per answer, each one of: "
            f"{', '.join(_STATUSES)} (or leave the field out)"
        )
    return track, [
        Completion(text=r, finish_reason="content_filter" if st == "content_filter" else "stop")
        for r, st in zip(responses, statuses, strict=True)
    ]


def load_answers(
    paths: Sequence[Path],
    dataset: Dataset,
    *,
    samples: int,
    mcqa_answers: int = 1,
    tracks: Collection[str] = ("gen", "mcqa"),
) -> AnswersFile:
    """Read and check answers files against the dataset; every bad row is reported at once.

    Each path is a file (a list of rows, or one row) or a folder of such ``*.json`` files.
    Rows of a track that is not in ``tracks`` are skipped: a folder may hold both tracks'
    answers and be judged for one.
    """
    known = {
        "gen": {s.question_id for s in dataset.gen},
        "mcqa": {s.question_id for s in dataset.mcqa},
    }
    out = AnswersFile(paths=list(paths))
    digest = hashlib.sha256()
    problems: list[str] = []
    for given in paths:
        for path in _files(given):
            raw, rows = _read(path)
            digest.update(path.name.encode("utf-8") + b"\0" + raw)
            _check_rows(path, rows, known, out, problems, samples, mcqa_answers, tracks)
    if problems:
        more = len(problems) - MAX_REPORTED
        listed = problems[:MAX_REPORTED] + ([f"... and {more} more"] if more > 0 else [])
        raise AnswersFileError("bad answers file:\n  " + "\n  ".join(listed))
    out.digest = digest.hexdigest()
    return out


def _check_rows(
    path: Path,
    rows: list[Any],
    known: Mapping[str, set[str]],
    out: AnswersFile,
    problems: list[str],
    samples: int,
    mcqa_answers: int,
    tracks: Collection[str],
) -> None:
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
        read = _answers(row, where)
        if isinstance(read, str):
            problems.append(read)
            continue
        track, answers = read
        if track not in tracks:
            continue
        expected = samples if track == "gen" else mcqa_answers
        if len(answers) != expected:
            option = "--siuo-samples" if track == "gen" else "--siuo-mcqa-shuffle"
            problems.append(
                f"{where}: {len(answers)} responses, but this run needs {expected} per "
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
        table[qid] = answers


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
        return responses[len(responses) - n :]


def answer_rows(
    records: Iterable[Mapping[str, Any]],
    samples: Mapping[tuple[str, str], Sample],
    track: str,
    *,
    mcqa_official_order: bool = True,
) -> list[dict[str, Any]]:
    """Rows in the official results format: the dataset row plus the answers.

    Generation rows carry ``responses`` and ``reference`` (the name ``gpt-eval.py`` reads the
    reference answer by); MCQA rows asked in the official option order carry ``response_mcqa``,
    as ``mcqa-eval.py`` reads it. MCQA answers to shuffled options keep a ``responses`` list:
    the official script would read them against the wrong letters.
    """
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
            row["reference"] = sample.reference_answer
        if sample is not None and track == "mcqa":
            row["options"] = dict(sample.options or {})
            row["correct_option"] = sample.correct_option
        texts = [a.get("text") or "" for a in rec["answers"]]
        if track == "mcqa" and mcqa_official_order and len(texts) == 1:
            row["response_mcqa"] = texts[0]
        else:
            row["responses"] = texts
        row[STATUSES_FIELD] = [a.get("status", "answered") for a in rec["answers"]]
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
