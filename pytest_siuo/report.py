"""The JSON report (schema-checked) and the terminal summary table of a pytest-siuo run.

The JSON layout is described by ``pytest_siuo/schema/report.schema.json``; every report is
validated against it before it is written (its envelope and up to ``WRITE_CHECKED_CASES`` of
its cases) and in full when it is loaded (e.g. as a baseline), so downstream tools can rely on
its shape.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path, PurePath
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs in the environment

from pytest_siuo.decision import RunResult, TrackResult
from pytest_siuo.files import atomic_write
from pytest_siuo.gate import GateResult
from pytest_siuo.tally import DomainTally, Tally

__all__ = [
    "REPORT_VERSION",
    "ReportError",
    "ReportSchemaError",
    "build_report",
    "load_report",
    "report_schema",
    "upgrade_report",
    "validate_report",
    "write_report",
]

REPORT_VERSION = 2
_SCHEMA_NAME = "report.schema.json"
_MAX_LISTED_FAULTS = 20


class ReportError(Exception):
    """A report that cannot be read or written; the message names the file and the fault."""


class ReportSchemaError(ReportError, ValueError):
    """A report that does not match the shipped schema; ``faults`` lists ``path: problem``."""

    def __init__(self, message: str, faults: list[str]) -> None:
        super().__init__(message)
        self.faults = faults


@lru_cache(maxsize=1)
def report_schema() -> dict[str, Any]:
    """The shipped JSON schema (Draft 2020-12) of the report."""
    text = (
        resources.files("pytest_siuo").joinpath("schema").joinpath(_SCHEMA_NAME).read_text("utf-8")
    )
    schema: dict[str, Any] = json.loads(text)
    return schema


def embedded_schemas() -> dict[str, dict[str, Any]]:
    """The parts of the report schema whose home is the code that makes them: the shipped file
    carries copies (users validate against the file alone), and a test keeps them equal;
    ``python -m pytest_siuo.report`` rewrites them."""
    from pytest_siuo.baseline import COMPARISON_SCHEMA
    from pytest_siuo.controls import CONTROL_CASE_SCHEMA, CONTROLS_SCHEMA
    from pytest_siuo.judge_check import judge_check_schema

    return {
        "comparison": copy.deepcopy(COMPARISON_SCHEMA),
        "judgeCheck": judge_check_schema(),
        "controls": copy.deepcopy(CONTROLS_SCHEMA),
        "control": copy.deepcopy(CONTROL_CASE_SCHEMA),
    }


def _write_schema_file() -> Path:
    path = Path(str(resources.files("pytest_siuo").joinpath("schema").joinpath(_SCHEMA_NAME)))
    schema = json.loads(path.read_text("utf-8"))
    schema["$defs"].update(embedded_schemas())
    path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    print(f"rewrote {_write_schema_file()}")


@lru_cache(maxsize=1)
def _validator() -> Any:
    return jsonschema.Draft202012Validator(report_schema())


def _iso(moment: datetime) -> str:
    # A naive datetime is taken as local time; the report always carries an explicit offset.
    aware = moment if moment.tzinfo is not None else moment.astimezone()
    return aware.isoformat(timespec="seconds")


def _jsonable(value: object, where: str) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise TypeError(f"report setting {where} is {value!r}, which JSON cannot hold")
        return value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(v, f"{where}[]") for v in value)
    raise TypeError(
        f"report setting {where} is a {type(value).__name__}; "
        "pass settings as str, number, bool, None, path, list or dict"
    )


def _domain_entry(counts: DomainTally, gate: GateResult | None) -> dict[str, Any]:
    decision = gate.decision(counts.domain) if gate is not None else None
    low, high = counts.interval("safe")
    return {
        "total": counts.total,
        "judged": counts.judged,
        "safe": counts.safe,
        "unsafe": counts.unsafe,
        "no_answer": counts.no_answer,
        "errors": counts.errors,
        "effective": counts.effective,
        "safe_effective": counts.safe_effective,
        "safe_rate": counts.safe_rate,
        "effective_rate": counts.effective_rate,
        "safe_effective_rate": counts.safe_effective_rate,
        "safe_rate_ci": [low, high],
        "threshold": decision.threshold if decision else None,
        "status": (gate.status(counts.domain) if gate is not None and decision else None)
        or "no threshold",
    }


def _track_summary(tally: Tally, result: TrackResult) -> dict[str, Any]:
    from pytest_siuo.controls import summary_entry

    gate, comparison = result.gate, result.comparison
    controls = summary_entry(tally, result)
    return {
        "overall": _domain_entry(tally.overall(result.track), gate),
        "domains": {
            name: _domain_entry(counts, gate)
            for name, counts in tally.domains(result.track).items()
        },
        "gate": _gate_entry(gate) if gate is not None else None,
        "comparison": comparison.to_dict() if comparison is not None else None,
        # Only with --siuo-controls: a run without them keeps the report it had.
        **({"controls": controls} if controls is not None else {}),
    }


def build_report(
    run: RunResult,
    tally: Tally,
    *,
    settings: Mapping[str, object],
    started: datetime,
    finished: datetime,
    exit_status: int | None = None,
    plugin_version: str,
    usage: Mapping[str, Mapping[str, int]] | None = None,
    judge_check: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report of a run as plain JSON types, rendered from its decision (see the schema
    and docs/configuration.md for every field).

    ``settings`` must already be free of secrets: it is written as given.
    """
    return {
        "version": REPORT_VERSION,
        "tool": {"name": "pytest-siuo", "version": plugin_version},
        "created": _iso(finished),
        "duration_s": round(max(0.0, (finished - started).total_seconds()), 3),
        "exit_status": exit_status,
        "passed": run.passed,
        "reasons": run.reasons,
        "complete": run.selection.complete,
        "selection": run.selection.to_json(),
        "gate_cases": [c.to_json() for c in run.cases],
        "settings": {str(k): _jsonable(v, str(k)) for k, v in settings.items()},
        "summary": {t.track: _track_summary(tally, t) for t in run.tracks},
        "usage": {role: dict(counts) for role, counts in (usage or {}).items()},
        "judge_check": dict(judge_check) if judge_check is not None else None,
        "cases": tally.records(),
    }


def _gate_entry(gate: GateResult) -> dict[str, Any]:
    return {
        "passed": gate.passed,
        "track": gate.track,
        "decisions": [
            {
                "domain": d.domain,
                "metric": d.metric,
                "value": d.value,
                "threshold": d.threshold,
                "status": d.status,
                "shortfall": d.shortfall,
                "judged": d.judged,
                "errors": d.errors,
                "low": d.low,
                "high": d.high,
                "threshold_on": d.threshold_on,
            }
            for d in gate.decisions
        ],
        "messages": gate.messages(),
    }


def upgrade_report(report: Mapping[str, Any]) -> dict[str, Any]:
    """A version 1 report in the version 2 shape (a newer one is returned as it is).

    Version 1 kept the gen track also at the top of ``summary``, one ``gates`` entry per track
    and a single ``comparison``; it had no verdict of its own, so ``passed`` is rebuilt from
    its gates, its comparison and its exit status, and ``complete`` is unknown (null).
    """
    if report.get("version") != 1:
        return dict(report)
    old = copy.deepcopy(dict(report))
    summary_v1 = old.get("summary") or {}
    # Version 1 wrote ``null`` for a track that ran ungated.
    gates = {t: g for t, g in (old.get("gates") or {}).items() if isinstance(g, Mapping)}
    if not gates and isinstance(old.get("gate"), Mapping):
        gates = {old["gate"].get("track", "gen"): old["gate"]}
    comparison = old.get("comparison")
    cases = old.get("cases") or []
    ran = [t for t in ("gen", "mcqa") if any(c.get("track") == t for c in cases)]
    summary = {}
    for track in ran:
        entry = summary_v1.get(track) or {"overall": summary_v1.get("overall"), "domains": {}}
        summary[track] = {
            "overall": entry.get("overall"),
            "domains": entry.get("domains") or {},
            "gate": gates.get(track),
            # Not carried over: its shape was version 1's; its verdict is in ``reasons``.
            "comparison": None,
        }
    reasons = [m for g in gates.values() for m in g.get("messages") or []]
    if isinstance(comparison, Mapping):
        reasons += list(comparison.get("messages") or [])
    passed = not reasons and old.get("exit_status") in (0, None)
    settings = dict(old.get("settings") or {})
    tracks = settings.get("tracks") or ran or ["gen"]
    settings.setdefault("tracks", list(tracks))
    for key in ("model", "model_id", "judge", "judge_id", "protocol", "dataset"):
        settings.setdefault(key, None)
    settings.setdefault("domains", [])
    settings.setdefault("samples", max([c.get("n") or 1 for c in cases] or [1]))
    return {
        "version": REPORT_VERSION,
        "tool": old.get("tool"),
        "created": old.get("created"),
        "duration_s": old.get("duration_s", 0),
        "exit_status": old.get("exit_status"),
        "passed": passed,
        "reasons": reasons,
        "complete": None,
        "selection": None,
        "gate_cases": [],
        "settings": settings,
        "summary": summary,
        "usage": old.get("usage") or {},
        "judge_check": old.get("judge_check"),
        "cases": cases,
    }


def _json_path(parts: Iterable[str | int]) -> str:
    # JSONPath: $.summary.domains['self-harm'].safe_rate, $.cases[3].outcome
    path = "$"
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            path += f".{part}"
        else:
            path += "[" + repr(part) + "]"
    return path


#: A report being written has its envelope and at most this many of its cases checked against
#: the schema (evenly spaced, first and last included); a loaded report has every case checked.
#: The cases are rendered from typed records whose shape the test suite checks in full, and
#: jsonschema costs about 1-2 ms a case: 18 s at the end of a 10,000-sample run, where the real
#: benchmark's 334 cases (both tracks) stay fully checked.
WRITE_CHECKED_CASES = 2000


@lru_cache(maxsize=1)
def _case_validator() -> Any:
    schema = report_schema()
    return jsonschema.Draft202012Validator({"$defs": schema["$defs"], "$ref": "#/$defs/case"})


def _spread(count: int, budget: int) -> list[int]:
    """``budget`` indices spread evenly over ``range(count)``, first and last included."""
    if budget <= 1:
        return [0][:budget]
    return sorted({round(i * (count - 1) / (budget - 1)) for i in range(budget)})


def validate_report(report: Mapping[str, Any], *, max_cases: int | None = None) -> None:
    """Check ``report`` against the shipped schema: all of it, or with ``max_cases``, the
    envelope and that many of its cases (:data:`WRITE_CHECKED_CASES`).

    :raises ReportSchemaError: listing ``$.json.path: problem`` for each fault (the first 20).
    """
    cases = report.get("cases")
    found: list[tuple[tuple[str | int, ...], str]] = []  # (path parts, message)
    if max_cases is None or not isinstance(cases, list) or len(cases) <= max_cases:
        found += [(tuple(e.absolute_path), e.message) for e in _validator().iter_errors(report)]
    else:
        envelope = {**report, "cases": []}
        found += [(tuple(e.absolute_path), e.message) for e in _validator().iter_errors(envelope)]
        for i in _spread(len(cases), max_cases):
            found += [
                (("cases", i, *e.absolute_path), e.message)
                for e in _case_validator().iter_errors(cases[i])
            ]
    if not found:
        return
    found.sort(key=lambda fault: list(map(str, fault[0])))
    faults = [f"{_json_path(parts)}: {message}" for parts, message in found]
    listed = faults[:_MAX_LISTED_FAULTS]
    more = len(faults) - len(listed)
    message = (
        "SIUO report does not match its schema (" + _SCHEMA_NAME + "):\n  " + "\n  ".join(listed)
    )
    if more:
        message += f"\n  ... and {more} more"
    raise ReportSchemaError(message, faults)


def write_report(path: Path, report: Mapping[str, Any]) -> None:
    """Validate ``report`` and write it to ``path`` as UTF-8 JSON, atomically.

    The text goes to a temporary file in the same directory which then replaces ``path``, so a
    reader (or a crash) never sees half a report. Parent directories are created.
    """
    validate_report(report, max_cases=WRITE_CHECKED_CASES)
    path = Path(path)
    text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    try:
        atomic_write(path, text)
    except OSError as exc:
        raise ReportError(
            f"cannot write SIUO report {path}: {exc.strerror or exc}; choose a writable path"
        ) from exc


def load_report(path: Path) -> dict[str, Any]:
    """Read and validate a report written by :func:`write_report`.

    :raises ReportError: naming the file when it cannot be read, is not JSON, was written by a
        newer pytest-siuo, or does not match the schema (:class:`ReportSchemaError`).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot read SIUO report {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ReportError(f"SIUO report {path} is not UTF-8 text: {exc}") from exc
    try:
        report = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(
            f"SIUO report {path} is not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}; regenerate it with --siuo-report=FILE"
        ) from exc
    except RecursionError:
        raise ReportError(
            f"SIUO report {path} nests JSON too deeply to read; it is not a pytest-siuo "
            "report; regenerate it with --siuo-report=FILE"
        ) from None
    if not isinstance(report, dict):
        raise ReportError(
            f"SIUO report {path} holds a JSON {type(report).__name__}, not an object; "
            "regenerate it with --siuo-report=FILE"
        )
    version = report.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > REPORT_VERSION:
        raise ReportError(
            f"SIUO report {path} has format version {version}, newer than this pytest-siuo "
            f"reads ({REPORT_VERSION}); upgrade pytest-siuo"
        )
    upgraded = upgrade_report(report) if version == 1 else dict(report)
    try:
        validate_report(upgraded)
    except ReportSchemaError as exc:
        raise ReportSchemaError(f"{path}: {exc}", exc.faults) from None
    return upgraded
