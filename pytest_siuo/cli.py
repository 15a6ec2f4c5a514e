"""``python -m pytest_siuo``: look at a past run without rerunning pytest.

``render REPORT.json`` writes the HTML and Markdown reports (and prints the terminal summary)
of a saved JSON report; ``compare BASELINE.json REPORT.json`` decides the baseline gate between
two saved reports. Both rebuild the run's decision with the plugin's own code
(:func:`pytest_siuo.decision.decide` on the report's case records, selection and settings) and
render it with the plugin's own renderers, so what they show is what the run showed.

Exit status: 0 passed (render: written), 1 the gate fails (compare only), 2 bad input, with one
line naming the file and the fix. No pytest import: this is plain Python.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["InputError", "main", "rebuild"]

OK, GATE_FAILED, BAD_INPUT = 0, 1, 2
_JUDGE_UNFIT = "SIUO judge self-check failed:"


class InputError(Exception):
    """Bad input: the one line printed before exiting with status 2."""


@dataclass(frozen=True)
class Rebuilt:
    """A saved run made live again: its tally and its decision."""

    run: Any  # decision.RunResult
    tally: Any  # tally.Tally
    report: dict[str, Any]


def _load(path: Path, what: str) -> dict[str, Any]:
    from .report import ReportError, ReportSchemaError, load_report

    if not path.is_file():
        raise InputError(
            f"{what} {path}: no such file; pass a JSON report written by --siuo-report=FILE"
        )
    try:
        return load_report(path)
    except ReportSchemaError as exc:
        first = exc.faults[0] if exc.faults else str(exc)
        raise InputError(
            f"{what} {path} is not a valid pytest-siuo report ({first}); pass a JSON report "
            "written by --siuo-report=FILE"
        ) from None
    except ReportError as exc:
        raise InputError(f"{what}: {str(exc).splitlines()[0]}") from None


def _selection(report: Mapping[str, Any], tracks: Sequence[str]) -> Any:
    from .decision import Selection

    saved = report.get("selection")
    if not isinstance(saved, Mapping):  # a version 1 report: taken as the whole selection
        return Selection(tracks=tuple(tracks))
    return (
        Selection(
            tracks=tuple(saved.get("tracks") or tracks),
            domains=tuple(saved.get("domains") or ()),
            expected=dict(saved.get("expected") or {}),
            evaluated=dict(saved.get("evaluated") or {}),
            keyword=saved.get("keyword") or "",
            markexpr=saved.get("markexpr") or "",
            last_failed=bool(saved.get("last_failed")),
            interrupted=bool(saved.get("interrupted")),
        )
        if saved.get("evaluated") is not None
        else Selection(tracks=tuple(tracks))
    )


def _thresholds(settings: Mapping[str, Any]) -> Any:
    from .thresholds import Thresholds

    t = settings.get("thresholds")
    if not isinstance(t, Mapping):
        return None
    return Thresholds.from_json(t)


def _tally(report: Mapping[str, Any]) -> Any:
    from .tally import Tally

    tally = Tally()
    for record in report["cases"]:
        tally.add(record)
    return tally


def rebuild(
    report: dict[str, Any],
    *,
    baseline: Any = None,
    thresholds: bool = True,
    overrides: Mapping[str, Any] | None = None,
) -> Rebuilt:
    """The decision of a saved ``report`` by :func:`pytest_siuo.decision.decide`, with the
    report's own settings (``overrides`` replace some: alpha, ignore_drop_below...).
    ``baseline`` is a :class:`~pytest_siuo.baseline.Baseline` or None; ``thresholds=False``
    decides the baseline gate alone."""
    from .decision import decide

    settings = {**report["settings"], **(overrides or {})}
    tally = _tally(report)
    judge_check = report.get("judge_check")
    unfit = isinstance(judge_check, Mapping) and judge_check.get("passed") is False
    run = decide(
        tally,
        selection=_selection(report, settings.get("tracks") or tally.tracks),
        thresholds=_thresholds(settings) if thresholds else None,
        threshold_on=settings.get("threshold_on") or "point",
        inconclusive=settings.get("inconclusive") or "pass",
        baseline=baseline,
        ignore_drop_below=float(settings.get("ignore_drop_below") or 0.0),
        alpha=float(settings["alpha"]) if settings.get("alpha") is not None else 0.05,
        strict_regressions=bool(settings.get("strict_regressions")),
        max_errors=int(settings.get("max_errors") or 0),
        identity=report["settings"],
        judge_unfit=_JUDGE_UNFIT if unfit else None,
    )
    return Rebuilt(run=run, tally=tally, report=report)


def _baseline_of(
    report: Mapping[str, Any], given: Path | None, path: Path
) -> tuple[Any, dict[str, Any] | None]:
    """The baseline the run was compared with: ``--baseline``, else the path the report names."""
    from .baseline import Baseline

    named = report["settings"].get("baseline")
    chosen = given if given is not None else (Path(named) if named else None)
    if chosen is None:
        return None, None
    if given is None and not chosen.is_file():
        raise InputError(
            f"report {path} was compared with the baseline {chosen}, which cannot be read here; "
            "pass it with --baseline FILE"
        )
    baseline_report = _load(chosen, "baseline")
    return Baseline.from_records(
        list(baseline_report["cases"]),
        settings=baseline_report["settings"],
        source=str(named or chosen),
    ), baseline_report


def _thumbnails(report: Mapping[str, Any], data: Path | None) -> tuple[dict[str, str], str]:
    """Inline images of the report's cases from ``data`` (or the dataset the report names,
    when it is a readable folder), and a note when they are not at hand."""
    from .html_report import embedded_image

    dataset = report["settings"].get("dataset")
    source = dataset.get("source") if isinstance(dataset, Mapping) else None
    folder = data if data is not None else (Path(source) if source else None)
    if folder is None or not folder.is_dir():
        return {}, (
            "images not shown: the report's dataset is not a readable folder here; pass "
            "--siuo-data DIR to embed them"
        )
    images = folder / "images" if (folder / "images").is_dir() else folder
    found: dict[str, str] = {}
    for case in report["cases"]:
        name = case.get("image")
        if not name:
            continue
        candidate = images / name
        try:
            found[case["case_id"]] = embedded_image(candidate.read_bytes())
        except (OSError, ValueError):
            continue  # a missing or unreadable image: that card shows the file name
    missing = sum(1 for c in report["cases"] if c.get("image")) - len(found)
    note = f"{missing} image(s) not found under {folder}" if missing else ""
    return found, note


def _render(args: argparse.Namespace) -> int:
    from .files import atomic_write
    from .html_report import render_html, write_html
    from .markdown import render_markdown
    from .summary import summary_lines

    path = Path(args.report)
    report = _load(path, "report")
    baseline, baseline_report = _baseline_of(report, args.baseline, path)
    done = rebuild(report, baseline=baseline)
    if done.run.passed != report["passed"] or done.run.reasons != report["reasons"]:
        print(
            f"SIUO render: note: the verdict rebuilt from {path} differs from the one it "
            "records (was it made by another pytest-siuo version?); showing the rebuilt one",
            file=sys.stderr,
        )
    wrote = []
    if args.markdown is not None:
        text = render_markdown(done.run, done.tally, settings=report["settings"])
        atomic_write(Path(args.markdown), text)
        wrote.append(f"SIUO markdown: {args.markdown}")
    if args.html is not None:
        thumbnails, note = _thumbnails(report, args.siuo_data)
        if note:
            print(f"SIUO render: {note}", file=sys.stderr)
        write_html(
            Path(args.html), render_html(report, baseline=baseline_report, thumbnails=thumbnails)
        )
        wrote.append(f"SIUO html: {args.html}")
    if args.terminal or not wrote:
        for title, lines in summary_lines(done.run, done.tally):
            if title:
                print(f" {title} ".center(78, "="))
            for text, _ in lines:
                print(text)
    for line in wrote:
        print(line)
    return OK


def _comparison_lines(comparison: Any) -> list[str]:
    """The per-domain comparison of one track as an aligned table."""
    heads = ["domain", "paired", "regressed", "improved", "baseline %", "now %", "change", "status"]

    def rate(value: float | None) -> str:
        return "-" if value is None else f"{value * 100:.1f}"

    rows = [
        [
            d.domain,
            str(d.paired),
            str(d.regressions),
            str(d.improvements),
            rate(d.baseline_rate),
            rate(d.current_rate),
            d.change_text if d.drop is not None else "-",
            d.status,
        ]
        for d in comparison.decisions
    ]
    widths = [max(len(r[i]) for r in [heads, *rows]) for i in range(len(heads))]

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            [cells[0].ljust(widths[0])]
            + [c.rjust(w) for c, w in zip(cells[1:-1], widths[1:-1], strict=True)]
            + [cells[-1]]
        ).rstrip()

    rule = "-" * len(fmt(heads))
    return [fmt(heads), rule, *[fmt(r) for r in rows[:-1]], rule, fmt(rows[-1])]


def _compare(args: argparse.Namespace) -> int:
    from .baseline import Baseline

    base_path, run_path = Path(args.baseline), Path(args.report)
    base_report = _load(base_path, "baseline")
    report = _load(run_path, "report")
    base_tracks = {c["track"] for c in base_report["cases"]}
    run_tracks = {c["track"] for c in report["cases"]}
    for path, tracks in ((base_path, base_tracks), (run_path, run_tracks)):
        if not tracks:  # a run stopped before any sample finished
            raise InputError(
                f"{path} has no evaluated case (complete: false); pass the report of a run "
                "that evaluated its samples"
            )
    if not base_tracks & run_tracks:
        raise InputError(
            f"baseline {base_path} has only {', '.join(sorted(base_tracks)) or 'no'} cases and "
            f"report {run_path} only {', '.join(sorted(run_tracks)) or 'no'} cases; compare "
            "reports of the same track (--siuo-track)"
        )
    baseline = Baseline.from_records(
        list(base_report["cases"]), settings=base_report["settings"], source=str(base_path)
    )
    overrides: dict[str, Any] = {}
    if args.alpha is not None:
        overrides["alpha"] = args.alpha
    if args.ignore_drop_below is not None:
        overrides["ignore_drop_below"] = args.ignore_drop_below
    if args.strict_regressions:
        overrides["strict_regressions"] = True
    done = rebuild(report, baseline=baseline, thresholds=False, overrides=overrides)
    run = done.run
    for result in run.tracks:
        comparison = result.comparison
        if comparison is None:
            continue
        print(f" SIUO comparison, {result.track} track ".center(78, "="))
        print(f"baseline {base_path}, this run {run_path}")
        for line in _comparison_lines(comparison):
            print(line)
        for line in comparison.warnings():
            print(line)
        regressed = comparison.cases_with("regression")
        if regressed:
            print(f"regressed samples: {', '.join(regressed)}")
        print(f"method: {comparison.method()}")
    failed = [c for c in run.cases if not c.passed]
    for case in failed:
        print(f"FAILED {case.nodeid}: {case.message}")
    if failed:
        print(f"SIUO compare: FAILED ({len(failed)} of {len(run.cases)} gate case(s) failed)")
        return GATE_FAILED
    print(f"SIUO compare: PASSED ({len(run.cases)} gate case(s) passed)")
    return OK


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; write e.g. 0.05") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not in [0, 1]; write e.g. 0.05")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_siuo",
        description="Look at a past pytest-siuo run from its JSON report (--siuo-report=FILE).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    render = commands.add_parser(
        "render",
        help="write the HTML/Markdown reports or print the terminal summary of a JSON report",
        description="Render a JSON report with the plugin's own renderers. Without --html or "
        "--markdown it prints the terminal summary.",
    )
    render.add_argument("report", metavar="REPORT.json")
    render.add_argument("--html", type=Path, metavar="FILE", help="write the HTML report")
    render.add_argument("--markdown", type=Path, metavar="FILE", help="write the Markdown")
    render.add_argument(
        "--terminal", action="store_true", help="print the terminal summary (also with files)"
    )
    render.add_argument(
        "--siuo-data",
        type=Path,
        metavar="DIR",
        help="dataset folder to embed images from (default: the report's dataset, if a folder)",
    )
    render.add_argument(
        "--baseline",
        type=Path,
        metavar="FILE",
        help="the baseline the run was compared with (default: the path the report names)",
    )
    compare = commands.add_parser(
        "compare",
        help="decide the baseline gate between two JSON reports (exit 1 when it fails)",
        description="Compare REPORT.json with BASELINE.json by the plugin's answer-level "
        "test, with REPORT.json's --siuo-alpha / --siuo-ignore-drop-below unless given here. "
        "Exit 0 passed, 1 the baseline gate fails, 2 bad input.",
    )
    compare.add_argument("baseline", metavar="BASELINE.json")
    compare.add_argument("report", metavar="REPORT.json")
    compare.add_argument("--alpha", type=_fraction, help="false-alarm bound per run (0.05)")
    compare.add_argument(
        "--ignore-drop-below", type=_fraction, help="pass significant drops smaller than this"
    )
    compare.add_argument(
        "--strict-regressions",
        action="store_true",
        help="also fail when any sample safe in the baseline is not safe now",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _render(args) if args.command == "render" else _compare(args)
    except InputError as exc:
        print(f"python -m pytest_siuo {args.command}: {exc}", file=sys.stderr)
        return BAD_INPUT
    except OSError as exc:
        where = getattr(exc, "filename", None) or "output"
        print(
            f"python -m pytest_siuo {args.command}: cannot write {where}: "
            f"{exc.strerror or exc}; choose a writable path",
            file=sys.stderr,
        )
        return BAD_INPUT
