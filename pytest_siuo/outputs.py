"""Run outputs written at the end of a session, each rendered from the run's decision: the JSON
report, the baseline, Markdown, HTML and the answers file. Plain Python: the plugin hands over
the state and the RunResult.

Every file goes through the atomic writer, and each writer returns the line the terminal
summary shows for it. One output that cannot be written (a full disk, an unwritable CI step
summary) costs only itself: the failure is one line and the other outputs are still written.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .files import atomic_write
from .text import shorten

if TYPE_CHECKING:
    from .decision import RunResult
    from .state import SiuoState
    from .tally import Tally


class RunOutputs:
    """The files made from one run's decision."""

    def __init__(self, state: SiuoState, run: RunResult, *, started: _dt.datetime) -> None:
        self.state = state
        self.run = run
        self.started = started

    def report(self, exitstatus: int) -> dict[str, Any]:
        from .report import build_report

        return build_report(
            self.run,
            self.state.tally,
            settings=self.state.report_settings(),
            started=self.started,
            finished=_dt.datetime.now(_dt.timezone.utc),
            exit_status=exitstatus,
            plugin_version=__version__,
            usage=self.state.usage(),
            judge_check=self.state.judge_check_summary,
        )

    def write_all(self, exitstatus: int, *, invocation_dir: Path) -> list[str]:
        """Write every output the settings ask for; returns the summary lines naming them
        (or saying in one line why one could not be written)."""
        s = self.state.settings
        lines: list[str] = []

        def attempt(what: str, write: Callable[[], list[str]]) -> None:
            try:
                lines.extend(write())
            except Exception as exc:  # one output's failure must not cost the others
                cause = shorten(getattr(exc, "strerror", None) or exc, 300)
                lines.append(f"SIUO {what}: NOT written: {type(exc).__name__}: {cause}")

        if s.save_answers is not None:
            attempt(
                "answers",
                lambda: [f"SIUO answers: {p}" for p in self.state.save_answers(invocation_dir)],
            )
        report = self.report(exitstatus)
        if s.report is not None:
            path = s.report

            def write_report() -> list[str]:
                from .report import write_report

                write_report(path, report)
                partial = "" if self.run.selection.complete else " (complete: false)"
                return [f"SIUO report: {path}{partial}"]

            attempt("report", write_report)
        if s.save_baseline is not None:
            attempt("baseline", lambda: self._save_baseline(report))
        if s.markdown is not None:
            markdown = s.markdown

            def write_markdown() -> list[str]:
                step = os.environ.get("GITHUB_STEP_SUMMARY")
                text = self.markdown()
                atomic_write(markdown, text)
                done = [f"SIUO markdown: {markdown}"]
                if step:
                    try:
                        with open(step, "a", encoding="utf-8") as f:
                            f.write(text + "\n")
                    except OSError as exc:
                        done.append(
                            f"SIUO markdown: NOT appended to GITHUB_STEP_SUMMARY ({step}): "
                            f"{exc.strerror or exc}"
                        )
                return done

            attempt("markdown", write_markdown)
        if s.html is not None:
            html = s.html

            def write_html() -> list[str]:
                self._write_html(html, report)
                return [f"SIUO html: {html}"]

            attempt("html", write_html)
        return lines

    def _save_baseline(self, report: dict[str, Any]) -> list[str]:
        path = self.state.settings.save_baseline
        assert path is not None
        if not self.run.selection.complete:
            # A partial run as the next release's baseline would compare it with a few samples.
            return [
                f"SIUO baseline NOT saved to {path}: partial run "
                f"({self.run.selection.why_partial()}); run the whole selection to save one"
            ]
        from .baseline import save_baseline

        save_baseline(path, report)
        return [f"SIUO baseline saved: {path}"]

    def markdown(self) -> str:
        from .markdown import render_markdown

        return render_markdown(self.run, self.state.tally, settings=self.state.report_settings())

    def _write_html(self, path: Path, report: dict[str, Any]) -> None:
        """The self-contained HTML report, with every sample's image embedded once."""
        from .html_report import embedded_image, render_html, write_html

        thumbnails: dict[str, str] = {}
        for sample in self.state.loaded_samples():
            try:
                thumbnails[sample.case_id] = embedded_image(sample.image.read_bytes())
            except Exception:  # a broken image already errored its sample; no thumbnail
                continue
        baseline = None
        if self.state.settings.baseline is not None:
            from .report import load_report

            baseline = load_report(self.state.settings.baseline)
        write_html(path, render_html(report, baseline=baseline, thumbnails=thumbnails))


def junit_suite_properties(run: RunResult, tally: Tally) -> list[tuple[str, str]]:
    """The verdict, per-domain rates and each gate case as JUnit ``<testsuite>`` properties,
    for dashboards that read properties rather than test cases (xunit2 keeps suite ones)."""
    from .domains import slug

    props: list[tuple[str, str]] = [("siuo_run_verdict", "pass" if run.passed else "fail")]
    props.append(("siuo_complete", "true" if run.selection.complete else "false"))
    for track in run.track_names:
        prefix = "siuo" if track == "gen" else f"siuo_{track}"
        domains = [*tally.domains(track).items(), ("overall", tally.overall(track))]
        for name, counts in domains:
            key = name if name == "overall" else slug(name)
            rate = counts.safe_rate
            props.append((f"{prefix}_safe_rate[{key}]", "" if rate is None else f"{rate:.4f}"))
            props.append((f"{prefix}_errors[{key}]", str(counts.errors)))
    props += [(f"siuo_gate[{c.name}]", "pass" if c.passed else "fail") for c in run.cases]
    return props
