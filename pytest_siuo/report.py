"""The JSON report (schema-checked) and the terminal summary table of a pytest-siuo run.

The JSON layout is described by ``pytest_siuo/schema/report.schema.json``; every report is
validated against it before it is written, and again when it is loaded (e.g. as a baseline), so
downstream tools can rely on its shape.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path, PurePath
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs in the environment

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
    "summary_lines",
    "validate_report",
    "write_report",
]

REPORT_VERSION = 1
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


def _domain_entry(counts: DomainTally, gate: GateResult | None, track: str) -> dict[str, Any]:
    decision = gate.decision(counts.domain) if gate is not None and gate.track == track else None
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


def _track_summary(tally: Tally, gate: GateResult | None, track: str) -> dict[str, Any]:
    return {
        "overall": _domain_entry(tally.overall(track), gate, track),
        "domains": {
            name: _domain_entry(counts, gate, track)
            for name, counts in tally.domains(track).items()
        },
    }


def build_report(
    tally: Tally,
    gate: GateResult | Mapping[str, GateResult] | None,
    *,
    settings: Mapping[str, object],
    started: datetime,
    finished: datetime,
    exit_status: int | None = None,
    plugin_version: str,
    usage: Mapping[str, Mapping[str, int]] | None = None,
    comparison: Mapping[str, Any] | None = None,
    judge_check: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report of a run as plain JSON types (see the schema for every field).

    ``summary.overall`` and ``summary.domains`` repeat the generation track for readers that
    only care about it; ``summary.gen`` and ``summary.mcqa`` (if that track ran) hold each track.
    ``gate`` is one gate result or one per track; ``gate`` in the report is the generation
    track's (or the only one), ``gates`` holds each track's.
    ``settings`` must already be free of secrets: it is written as given.
    """
    if gate is None:
        gates: dict[str, GateResult] = {}
    elif isinstance(gate, GateResult):
        gates = {gate.track: gate}
    else:
        gates = dict(gate)
    summary: dict[str, Any] = {"gen": _track_summary(tally, gates.get("gen"), "gen")}
    # Copies, not aliases: editing one part of a loaded report must not change another.
    summary["overall"] = copy.deepcopy(summary["gen"]["overall"])
    summary["domains"] = copy.deepcopy(summary["gen"]["domains"])
    for track in tally.tracks:
        if track != "gen":
            summary[track] = _track_summary(tally, gates.get(track), track)
    entries = {track: _gate_entry(g) for track, g in gates.items()}
    main = entries.get("gen") or next(iter(entries.values()), None)
    return {
        "version": REPORT_VERSION,
        "tool": {"name": "pytest-siuo", "version": plugin_version},
        "created": _iso(finished),
        "duration_s": round(max(0.0, (finished - started).total_seconds()), 3),
        "exit_status": exit_status,
        "settings": {str(k): _jsonable(v, str(k)) for k, v in settings.items()},
        "summary": summary,
        "gate": main,
        "gates": entries,
        "usage": {role: dict(counts) for role, counts in (usage or {}).items()},
        "comparison": dict(comparison) if comparison is not None else None,
        "judge_check": dict(judge_check) if judge_check is not None else None,
        # Copies, so that later edits of a report do not reach into the tally.
        "cases": json.loads(json.dumps(tally.records())),
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


def _json_path(error: Any) -> str:
    # JSONPath: $.summary.domains['self-harm'].safe_rate, $.cases[3].outcome
    path = "$"
    for part in error.absolute_path:
        if isinstance(part, int):
            path += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            path += f".{part}"
        else:
            path += "[" + repr(part) + "]"
    return path


def validate_report(report: Mapping[str, Any]) -> None:
    """Check ``report`` against the shipped schema.

    :raises ReportSchemaError: listing ``$.json.path: problem`` for each fault (the first 20).
    """
    errors = sorted(_validator().iter_errors(report), key=lambda e: list(map(str, e.absolute_path)))
    if not errors:
        return
    faults = [f"{_json_path(e)}: {e.message}" for e in errors]
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
    validate_report(report)
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
    try:
        validate_report(report)
    except ReportSchemaError as exc:
        raise ReportSchemaError(f"{path}: {exc}", exc.faults) from None
    return report


# -- terminal table -------------------------------------------------------------------------

_HEADERS = (
    "domain",
    "samples",
    "safe %",
    "95% CI",
    "effective %",
    "safe&eff %",
    "errors",
    "threshold",
    "status",
)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}"


def _ci(counts: DomainTally) -> str:
    """The safe rate's 95% Wilson interval, in whole percent: with ~18 samples per domain the
    interval is what keeps a reader from over-reading one flipped sample."""
    if counts.judged == 0:
        return "-"
    low, high = counts.interval("safe")
    return f"{low * 100:.0f}-{high * 100:.0f}"


def _row(counts: DomainTally, gate: GateResult | None, track: str) -> tuple[list[str], str]:
    decision = gate.decision(counts.domain) if gate is not None and gate.track == track else None
    status = "no threshold"
    if gate is not None and gate.track == track:
        status = gate.status(counts.domain) or "no threshold"
    shown = {"pass": "pass", "fail": "FAIL", "no data": "NO DATA", "inconclusive": "unsure"}.get(
        status, "-"
    )
    cells = [
        counts.domain,
        str(counts.total),
        _pct(counts.safe_rate),
        _ci(counts),
        _pct(counts.effective_rate),
        _pct(counts.safe_effective_rate),
        str(counts.errors),
        _pct(decision.threshold if decision is not None else None),
        shown,
    ]
    return cells, status


def summary_lines(
    tally: Tally,
    gate: GateResult | None,
    *,
    track: str = "gen",
    markup: bool = False,
) -> list[tuple[str, dict[str, bool]]]:
    """The per-domain summary table of ``track`` as ``(text, markup)`` pairs.

    The caller writes each with ``terminalreporter.write_line(text, **markup)``. With ``markup``
    failing rows are red and passing rows green; every line has the same width. Empty when the
    track has no records.
    """
    domains = tally.domains(track)
    if not domains:
        return []
    rows = [_row(counts, gate, track) for counts in domains.values()]
    overall_row = _row(tally.overall(track), gate, track)
    all_cells = [list(_HEADERS)] + [cells for cells, _ in rows] + [overall_row[0]]
    widths = [max(len(cells[i]) for cells in all_cells) for i in range(len(_HEADERS))]

    def fmt(cells: list[str]) -> str:
        # Names left-aligned, numbers and status right-aligned, two spaces between columns.
        parts = [cells[0].ljust(widths[0])]
        parts += [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join(parts)

    def style(status: str, bold: bool = False) -> dict[str, bool]:
        if not markup:
            return {}
        chosen: dict[str, bool] = {}
        if status in ("fail", "no data"):
            chosen["red"] = True
        elif status == "pass":
            chosen["green"] = True
        if bold:
            chosen["bold"] = True
        return chosen

    header = fmt(list(_HEADERS))
    rule = "-" * len(header)
    lines: list[tuple[str, dict[str, bool]]] = [(header, {"bold": True} if markup else {})]
    lines.append((rule, {}))
    lines += [(fmt(cells), style(status)) for cells, status in rows]
    lines.append((rule, {}))
    lines.append((fmt(overall_row[0]), style(overall_row[1], bold=True)))
    return lines
