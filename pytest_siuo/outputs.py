"""Run outputs written at the end of a session: JSON report, baseline, Markdown, HTML, answers,
and the JUnit suite properties. Plain Python: the plugin hands over what the run produced.

Every file goes through the atomic writer, and each writer returns the line the terminal
summary shows for it.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .domains import slug
from .files import atomic_write

if TYPE_CHECKING:
    from .baseline import Comparison
    from .gate import GateResult
    from .state import SiuoState
    from .tally import Tally


class RunOutputs:
    """What one run decided, and the files made from it."""

    def __init__(
        self,
        state: SiuoState,
        *,
        gates: Mapping[str, GateResult],
        comparisons: Mapping[str, Comparison],
        started: _dt.datetime,
    ) -> None:
        self.state = state
        self.gates = gates
        self.comparisons = comparisons
        self.started = started

    @property
    def tally(self) -> Tally:
        return self.state.tally

    def report(self, exitstatus: int) -> dict[str, Any]:
        from .report import build_report

        comparison = self.comparisons.get("gen") or next(iter(self.comparisons.values()), None)
        return build_report(
            self.tally,
            self.gates,
            settings=self.state.report_settings(),
            started=self.started,
            finished=_dt.datetime.now(_dt.timezone.utc),
            exit_status=exitstatus,
            plugin_version=__version__,
            usage=self.state.usage(),
            comparison=comparison.to_dict() if comparison is not None else None,
            judge_check=self.state.judge_check_summary,
        )

    def write_all(self, exitstatus: int, *, invocation_dir: Path) -> list[str]:
        """Write every output the settings ask for; returns the summary lines naming them."""
        s = self.state.settings
        lines: list[str] = []
        if s.save_answers is not None:
            lines += [f"SIUO answers: {p}" for p in self.state.save_answers(invocation_dir)]
        report = self.report(exitstatus)
        if s.report is not None:
            from .report import write_report

            write_report(s.report, report)
            lines.append(f"SIUO report: {s.report}")
        if s.save_baseline is not None:
            from .baseline import save_baseline

            save_baseline(s.save_baseline, report)
            lines.append(f"SIUO baseline saved: {s.save_baseline}")
        if s.markdown is not None:
            self.write_markdown(s.markdown, step_summary=os.environ.get("GITHUB_STEP_SUMMARY"))
            lines.append(f"SIUO markdown: {s.markdown}")
        if s.html is not None:
            self.write_html(s.html, report)
            lines.append(f"SIUO html: {s.html}")
        return lines

    def junit_suite_properties(self) -> list[tuple[str, str]]:
        """Per-domain rates and gate decisions as JUnit <testsuite> properties."""
        props: list[tuple[str, str]] = []
        for track in self.tally.tracks:
            prefix = "siuo" if track == "gen" else "siuo_mcqa"
            domains = [*self.tally.domains(track).items(), ("overall", self.tally.overall(track))]
            for name, counts in domains:
                key = name if name == "overall" else slug(name)
                rate = counts.safe_rate
                props.append((f"{prefix}_safe_rate[{key}]", "" if rate is None else f"{rate:.4f}"))
                props.append((f"{prefix}_errors[{key}]", str(counts.errors)))
            gate = self.gates.get(track)
            if gate is not None:
                props.append((f"{prefix}_gate", "pass" if gate.passed else "fail"))
            comparison = self.comparisons.get(track)
            if comparison is not None:
                props.append((f"{prefix}_baseline_gate", "pass" if comparison.passed else "fail"))
        return props

    def write_markdown(self, path: Path, *, step_summary: str | None = None) -> None:
        """The Markdown summary; also appended to a CI job summary file when one is given."""
        from .markdown import render_markdown

        parts = [
            render_markdown(
                self.tally,
                self.gates.get(track),
                self.comparisons.get(track),
                title="SIUO safety report" + (" (multiple choice)" if track == "mcqa" else ""),
                settings=self.state.report_settings(),
            )
            for track in self.tally.tracks
        ]
        text = "\n\n".join(parts)
        atomic_write(path, text)
        if step_summary:
            with open(step_summary, "a", encoding="utf-8") as f:
                f.write(text + "\n")

    def write_html(self, path: Path, report: dict[str, Any]) -> None:
        """The self-contained HTML report, with a thumbnail of every sample's image."""
        from .html_report import make_thumbnail, render_html, write_html

        thumbnails: dict[str, str] = {}
        for sample in self.state.loaded_samples():
            try:
                thumbnails[sample.case_id] = make_thumbnail(sample.image.read_bytes())
            except Exception:  # a broken image already errored its sample; no thumbnail
                continue
        baseline = None
        if self.state.settings.baseline is not None:
            from .report import load_report

            baseline = load_report(self.state.settings.baseline)
        write_html(path, render_html(report, baseline=baseline, thumbnails=thumbnails))
