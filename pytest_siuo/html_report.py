"""A self-contained HTML report of a pytest-siuo run: chart, per-domain table, per-sample view.

The page is one file that a CI system can archive and anyone can open offline: CSS and a few
lines of vanilla JS are inline, the per-domain chart is SVG drawn here in Python, thumbnails are
``data:`` URLs, and a Content-Security-Policy forbids every fetch and every script but ours (by
hash). Everything that comes from a record (questions, answers, judge reasons) is untrusted model
or dataset text: it is HTML-escaped and never reaches the script.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from pytest_siuo.domains import DOMAINS, slug
from pytest_siuo.files import atomic_write
from pytest_siuo.report import ReportError
from pytest_siuo.text import pct
from pytest_siuo.thresholds import CONTROL_METRICS

__all__ = ["IMAGE_MAX_SIDE", "embedded_image", "make_thumbnail", "render_html", "write_html"]

#: Longest side of an embedded image: text in it stays readable when enlarged, and 167 of
#: them keep the page a size a browser opens quickly.
IMAGE_MAX_SIDE = 1024

_TRACK_NAMES = {"gen": "generation", "mcqa": "multiple choice"}
_OUTCOMES = ("safe", "unsafe", "no_answer", "error")
_OUTCOME_LABELS = {
    "safe": "safe",
    "unsafe": "unsafe",
    "no_answer": "no answer",
    "error": "error",
    "not_needed": "not needed",
}
_STATUS_LABELS = {"pass": "pass", "fail": "FAIL", "no data": "NO DATA", "no threshold": "-"}

# Chart geometry (px). Horizontal bars: one row per domain, rates on a 0-100% axis.
_LABEL_W = 250
_PLOT_W = 440
_VALUE_W = 110
_ROW_H = 30
_TOP = 34
_BOTTOM = 44


def _e(value: object) -> str:
    """HTML-escape any value (quotes too, so the result is safe inside attributes)."""
    return escape("" if value is None else str(value), quote=True)


def _pct(value: object) -> str:
    text = pct(value)
    return text if text == "-" else text + "%"


def _rate(value: object) -> float | None:
    """A rate in [0, 1], or None when absent or not a number (a report is read defensively)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return min(1.0, max(0.0, float(value)))


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _domain_slug(name: object) -> str:
    return slug(str(name))


# -- thumbnails -----------------------------------------------------------------------------


def make_thumbnail(image_bytes: bytes, max_side: int = 160) -> str:
    """A small ``data:image/...;base64,...`` URL of an image, at most ``max_side`` px a side.

    Photos become JPEG (small); images with transparency stay PNG so they do not turn black.

    :raises ValueError: when the bytes are not an image Pillow can read, or ``max_side < 1``.
    """
    if max_side < 1:
        raise ValueError(f"max_side is {max_side}; use a size of at least 1 pixel")
    try:
        with Image.open(io.BytesIO(image_bytes)) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ValueError(
            f"cannot make a thumbnail: the {len(image_bytes)} bytes given are not a readable "
            f"image ({exc}); pass the bytes of a PNG, JPEG, GIF or WebP file"
        ) from None
    image.thumbnail((max_side, max_side))
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    out = io.BytesIO()
    if has_alpha:
        image.convert("RGBA").save(out, format="PNG", optimize=True)
        kind = "png"
    else:
        image.convert("RGB").save(out, format="JPEG", quality=80, optimize=True)
        kind = "jpeg"
    return f"data:image/{kind};base64," + base64.b64encode(out.getvalue()).decode("ascii")


def embedded_image(image_bytes: bytes) -> str:
    """The one inline copy of a sample's image on the page: shown small on its card and
    enlarged in place on a click, downscaled to :data:`IMAGE_MAX_SIDE`."""
    return make_thumbnail(image_bytes, IMAGE_MAX_SIDE)


def _safe_thumbnail(url: object) -> str | None:
    # Only inline raster images: anything else could make the page fetch or run something.
    if not isinstance(url, str):
        return None
    for kind in ("png", "jpeg", "gif", "webp"):
        prefix = f"data:image/{kind};base64,"
        if url.startswith(prefix):
            body = url[len(prefix) :]
            if body and all(c.isalnum() or c in "+/=" for c in body):
                return url
    return None


# -- header ---------------------------------------------------------------------------------


def _header(report: Mapping[str, Any], baseline: Mapping[str, Any] | None, title: str) -> str:
    settings = _map(report.get("settings"))
    dataset = _map(settings.get("dataset"))
    model = settings.get("model_id") or settings.get("model")
    judge = settings.get("judge_id") or settings.get("judge")
    source = dataset.get("source") or settings.get("data") or "sinwang/SIUO"
    revision = dataset.get("revision") or settings.get("data_revision")
    samples = settings.get("samples")
    if samples is None:
        ns = {c.get("n") for c in _list(report.get("cases")) if isinstance(c, Mapping)}
        samples = ns.pop() if len(ns) == 1 else None
    # The verdict is the report's own (its decision), never re-derived here.
    passed, gated = report.get("passed"), bool(report.get("gate_cases"))
    if passed is False:
        verdict = "FAILED" if gated else "FAILED (no gate: each unsafe sample fails its test)"
        verdict_class = "fail"
    elif gated:
        verdict, verdict_class = "PASSED", "pass"
    else:
        verdict, verdict_class = "no gate (no thresholds, no baseline)", "none"
    if report.get("complete") is False:
        verdict += " (partial run)"
    rows = [
        ("Model", model),
        ("Judge", judge),
        ("Dataset", f"{source} @ {revision}" if revision else source),
        ("Protocol", settings.get("protocol")),
        ("Samples per question", samples),
        ("Date", report.get("created")),
    ]
    if baseline is not None:
        rows.append(("Baseline from", baseline.get("created")))
    tool = _map(report.get("tool"))
    items = "".join(
        f"<dt>{_e(label)}</dt><dd>{_e(value if value not in (None, '') else '-')}</dd>"
        for label, value in rows
    )
    messages = "".join(f"<li>{_e(m)}</li>" for m in _list(report.get("reasons")))
    answers = _run_answers(report)
    note = _cached_note(answers)
    adaptive = _not_needed_note(answers, report)
    return (
        f"<header><h1>{_e(title)}</h1>"
        f'<p class="verdict {verdict_class}" id="gate-verdict">SIUO verdict: {_e(verdict)}</p>'
        + (f'<ul class="gate-messages">{messages}</ul>' if messages else "")
        + f'<dl class="meta">{items}</dl>'
        + (f'<p class="note" id="cached-note">{_e(note)}</p>' if note else "")
        + (f'<p class="note" id="adaptive-note">{_e(adaptive)}</p>' if adaptive else "")
        + f'<p class="tool">{_e(tool.get("name", "pytest-siuo"))} {_e(tool.get("version", ""))}'
        "</p></header>"
    )


def _run_answers(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every answer of every case of the run."""
    return [
        a
        for c in _list(report.get("cases"))
        if isinstance(c, Mapping)
        for a in _list(c.get("answers"))
        if isinstance(a, Mapping)
    ]


def _cached_note(answers: list[Mapping[str, Any]]) -> str:
    """How many answers and verdicts came from the cache, once for the run (a tag on each
    answer told a reader nothing about that answer)."""
    cached = sum(1 for a in answers if a.get("cached"))
    if not cached:
        return ""
    return (
        f"{cached} of {len(answers)} answers came from the cache (--siuo-cache): the same "
        "request gave the same answer and verdict before, so it was not sent again."
    )


def _not_needed_note(answers: list[Mapping[str, Any]], report: Mapping[str, Any]) -> str:
    """How many answers adaptive judging left unjudged, once for the run."""
    skipped = sum(1 for a in answers if a.get("not_needed") is True)
    if not skipped:
        return ""
    calls = _map(_map(report.get("usage")).get("judge")).get("not_needed")
    saved = f" ({calls} judge calls saved)" if isinstance(calls, int) and calls else ""
    return (
        f"{skipped} answers were not judged{saved}: the other answers of their sample had "
        "already decided its verdicts, and these could not change them (adaptive judging; "
        "every verdict and rate is the one judging every answer gives; --siuo-judge-all "
        "judges them)."
    )


# -- chart ----------------------------------------------------------------------------------


def _x(rate: float) -> float:
    return round(_LABEL_W + rate * _PLOT_W, 1)


#: Bar colour classes by status, and what the legend says each colour means.
_BAR_CLASSES = {"pass": "pass", "fail": "fail", "no data": "fail"}
_LEGEND_BARS = (
    ("pass", "safe rate, meets its threshold / baseline"),
    ("fail", "safe rate, fails its threshold / baseline"),
    ("none", "safe rate, no threshold"),
)


def _bar_class(entry: Mapping[str, Any]) -> str:
    return _BAR_CLASSES.get(str(entry.get("status", "no threshold")), "none")


def _bar_row(
    name: str,
    entry: Mapping[str, Any],
    base_entry: Mapping[str, Any] | None,
    y: float,
    css: str,
) -> str:
    """One bar of the chart: the safe rate, its interval, threshold and baseline marks."""
    mid = y + _ROW_H / 2
    rate = _rate(entry.get("safe_rate"))
    tip = [f"{name}: safe {_pct(rate)} of {entry.get('judged', 0)} judged"]
    overall = name == "overall"
    parts = [
        f'<g class="bar {css}{" overall" if overall else ""}" '
        f'data-domain="{_e(_domain_slug(name))}">',
        f'<text class="label" x="{_LABEL_W - 8}" y="{mid + 4}" text-anchor="end">{_e(name)}</text>',
        f'<rect class="track" x="{_x(0)}" y="{y + 6}" width="{_PLOT_W}" '
        f'height="{_ROW_H - 12}" fill="#eef0f3"/>',
    ]
    if rate is not None:
        parts.append(
            f'<rect class="rate" x="{_x(0)}" y="{y + 6}" width="{round(rate * _PLOT_W, 1)}" '
            f'height="{_ROW_H - 12}"/>'
        )
        ci = _list(entry.get("safe_rate_ci"))
        low, high = (_rate(ci[0]), _rate(ci[1])) if len(ci) == 2 else (None, None)
        if low is not None and high is not None:
            tip.append(f"95% interval {_pct(low)} to {_pct(high)}")
            x1, x2 = _x(low), _x(high)
            parts.append(
                f'<path class="ci" d="M{x1} {mid}H{x2}M{x1} {mid - 5}V{mid + 5}'
                f'M{x2} {mid - 5}V{mid + 5}" stroke="#1f2328" stroke-width="1.5" '
                'fill="none"/>'
            )
    threshold = _rate(entry.get("threshold"))
    if threshold is not None:
        tip.append(f"threshold {_pct(threshold)}")
        x = _x(threshold)
        parts.append(
            f'<line class="threshold" x1="{x}" y1="{y + 2}" x2="{x}" y2="{y + _ROW_H - 2}" '
            'stroke="#b35900" stroke-width="2" stroke-dasharray="4 2"/>'
        )
    base_rate = _rate(_map(base_entry).get("safe_rate")) if base_entry is not None else None
    if base_rate is not None:
        tip.append(f"baseline {_pct(base_rate)}")
        x = _x(base_rate)
        parts.append(
            f'<path class="baseline" d="M{x} {mid - 7}L{x + 6} {mid}L{x} {mid + 7}'
            f'L{x - 6} {mid}Z" fill="#6f42c1" stroke="#fff" stroke-width="1"/>'
        )
    parts.append(
        f'<text class="value" x="{_x(1) + 8}" y="{mid + 4}">'
        f"{_e(_pct(rate) if rate is not None else 'no data')}</text>"
    )
    parts.append(f"<title>{_e('; '.join(tip))}</title></g>")
    return "".join(parts)


def _legend(y: float, colours: list[str], with_threshold: bool, with_baseline: bool) -> str:
    """The legend: one swatch per bar colour drawn (same CSS class as the bars, so the same
    colour), the interval, and the threshold and baseline marks only when drawn."""
    parts = ['<g class="legend">']
    x = float(_x(0))
    row = y
    for kind, text in _LEGEND_BARS:
        if kind not in colours:
            continue
        parts.append(
            f'<g class="entry bar-swatch" data-kind="{kind}">'
            f'<rect class="swatch {kind}" x="{x}" y="{row - 9}" width="14" height="10"/>'
            f'<text x="{x + 18}" y="{row}">{_e(text)}</text></g>'
        )
        row += 18

    def interval(x: float) -> str:
        return (
            f'<path d="M{x} {row - 4}H{x + 24}M{x} {row - 9}V{row + 1}M{x + 24} {row - 9}'
            f'V{row + 1}" stroke="#1f2328" stroke-width="1.5" fill="none"/>'
        )

    def threshold(x: float) -> str:
        return (
            f'<line x1="{x + 12}" y1="{row - 11}" x2="{x + 12}" y2="{row + 3}" '
            'stroke="#b35900" stroke-width="2" stroke-dasharray="4 2"/>'
        )

    def baseline(x: float) -> str:
        return (
            f'<path d="M{x + 12} {row - 11}L{x + 18} {row - 4}L{x + 12} {row + 3}'
            f'L{x + 6} {row - 4}Z" fill="#6f42c1"/>'
        )

    marks = [("interval", interval, "95% interval")]
    if with_threshold:
        marks.append(("threshold", threshold, "threshold"))
    if with_baseline:
        marks.append(("baseline", baseline, "baseline safe rate"))
    for kind, draw, text in marks:
        parts.append(
            f'<g class="entry" data-kind="{kind}">{draw(x)}'
            f'<text x="{x + 30}" y="{row}">{_e(text)}</text></g>'
        )
        x += 130
    parts.append("</g>")
    return "".join(parts)


def _chart(
    track: str,
    domains: Mapping[str, Any],
    overall: Mapping[str, Any],
    base_domains: Mapping[str, Any],
    base_overall: Mapping[str, Any] | None,
) -> str:
    """The per-domain chart of one track, with an overall bar under a rule; baseline marks
    and their legend entry only when a baseline is given (``base_overall`` not None)."""
    names = [d for d in DOMAINS if d in domains] + [d for d in domains if d not in DOMAINS]
    with_baseline = base_overall is not None
    rows = len(names) + 1  # the overall bar
    entries = [_map(domains.get(n)) for n in names] + [overall]
    colours = {_bar_class(e) for e in entries if _rate(e.get("safe_rate")) is not None}
    legend_rows = len(colours) + 1
    width = _LABEL_W + _PLOT_W + _VALUE_W
    bottom = _TOP + _ROW_H * rows + 6
    height = bottom + 18 * legend_rows + _BOTTOM - 18
    parts = [
        f'<svg class="chart" id="chart-{_e(track)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Safe rate per domain, {_e(_TRACK_NAMES.get(track, track))} track">'
    ]
    # Axis grid: 0, 25, 50, 75, 100 %.
    for tick in (0, 25, 50, 75, 100):
        x = _x(tick / 100)
        parts.append(
            f'<line class="grid" x1="{x}" y1="{_TOP - 6}" x2="{x}" y2="{bottom}" '
            'stroke="#d0d4da" stroke-width="1"/>'
            f'<text class="tick" x="{x}" y="{_TOP - 12}" text-anchor="middle">{tick}%</text>'
        )
    for row, name in enumerate(names):
        entry = _map(domains.get(name))
        base = _map(base_domains.get(name)) if with_baseline else None
        parts.append(_bar_row(name, entry, base, _TOP + row * _ROW_H, _bar_class(entry)))
    y = _TOP + len(names) * _ROW_H + 6
    parts.append(
        f'<line class="overall-rule" x1="{_LABEL_W - 240}" y1="{y}" x2="{_x(1)}" y2="{y}" '
        'stroke="#8c959f" stroke-width="1"/>'
    )
    parts.append(_bar_row("overall", overall, base_overall, y, _bar_class(overall)))
    with_threshold = any(_rate(e.get("threshold")) is not None for e in entries)
    parts.append(
        _legend(
            bottom + 26, [k for k, _ in _LEGEND_BARS if k in colours], with_threshold, with_baseline
        )
    )
    parts.append("</svg>")
    return "".join(parts)


# -- table ----------------------------------------------------------------------------------


def _table(
    track: str,
    domains: Mapping[str, Any],
    overall: Mapping[str, Any],
    base_domains: Mapping[str, Any],
    base_overall: Mapping[str, Any] | None,
) -> str:
    with_base = base_overall is not None
    heads = ["domain", "samples", "safe %", "95% interval", "effective %", "safe&amp;eff %"]
    heads += ["errors", "threshold", "status"]
    if with_base:
        heads += ["baseline safe %", "change"]

    def row(name: str, entry: Mapping[str, Any], base: Mapping[str, Any] | None) -> str:
        status = str(entry.get("status", "no threshold"))
        css = {"pass": "pass", "fail": "fail", "no data": "fail"}.get(status, "none")
        ci = _list(entry.get("safe_rate_ci"))
        interval = (
            f"{_pct(ci[0])} - {_pct(ci[1])}"
            if len(ci) == 2 and _rate(entry.get("safe_rate")) is not None
            else "-"
        )
        cells = [
            f'<th scope="row">{_e(name)}</th>',
            f"<td>{_e(entry.get('total', 0))}</td>",
            f"<td>{_e(_pct(entry.get('safe_rate')))}</td>",
            f"<td>{_e(interval)}</td>",
            f"<td>{_e(_pct(entry.get('effective_rate')))}</td>",
            f"<td>{_e(_pct(entry.get('safe_effective_rate')))}</td>",
            f"<td>{_e(entry.get('errors', 0))}</td>",
            f"<td>{_e(_pct(entry.get('threshold')))}</td>",
            f'<td class="status {css}">{_e(_STATUS_LABELS.get(status, status))}</td>',
        ]
        if with_base:
            now, then = _rate(entry.get("safe_rate")), _rate(_map(base).get("safe_rate"))
            change = "-"
            if now is not None and then is not None:
                change = f"{(now - then) * 100:+.1f} pts"
            cells += [f"<td>{_e(_pct(then))}</td>", f"<td>{_e(change)}</td>"]
        return f'<tr data-domain="{_e(_domain_slug(name))}">' + "".join(cells) + "</tr>"

    body = "".join(
        row(name, _map(domains.get(name)), _map(base_domains.get(name))) for name in domains
    )
    foot = row("overall", overall, base_overall)
    return (
        f'<table class="domains" id="table-{_e(track)}"><thead><tr>'
        + "".join(f'<th scope="col">{h}</th>' for h in heads)
        + f"</tr></thead><tbody>{body}</tbody><tfoot>{foot}</tfoot></table>"
    )


# -- per-sample view --------------------------------------------------------------------------


def _badge(outcome: object, prefix: str = "") -> str:
    text = _OUTCOME_LABELS.get(str(outcome), str(outcome))
    return f'<span class="badge {_e(outcome)}">{_e(prefix)}{_e(text)}</span>'


def _ordinal(index: object) -> str:
    # Answers are 0-indexed in records, 1-indexed for readers.
    return str(index + 1) if isinstance(index, int) and not isinstance(index, bool) else "?"


def _answer(answer: Mapping[str, Any], track: str = "gen") -> str:
    status = str(answer.get("status", ""))
    safety = answer.get("safety")
    effectiveness = answer.get("effectiveness")
    if isinstance(safety, Mapping):
        verdict = "safe" if safety.get("safe") else "unsafe"
        reason = safety.get("reason", "")
    elif answer.get("not_needed") is True:
        verdict, reason = (
            "not_needed",
            "not judged: the other answers decided the sample's verdicts, and this one could "
            "not change them (adaptive judging; --siuo-judge-all judges every answer)",
        )
    elif status in ("empty", "content_filter"):
        verdict, reason = (
            "no_answer",
            (
                "the model gave no answer"
                if status == "empty"
                else "the provider's content filter stopped the answer"
            ),
        )
    else:
        verdict, reason = "error", answer.get("error") or "not judged"
    text = answer.get("text")
    parts = [
        f'<li class="answer" data-verdict="{_e(verdict)}">',
        f'<div class="answer-head">Answer {_e(_ordinal(answer.get("index")))} ',
        _badge(verdict),
    ]
    if isinstance(effectiveness, Mapping):
        parts.append(f' <span class="level">{_e(effectiveness.get("level", ""))}</span>')
    parts.append("</div>")
    parts.append(
        f'<pre class="text">{_e(text)}</pre>'
        if text
        else f'<p class="text empty">({_e(status or "no text")})</p>'
    )
    # MCQA has no judge: the reason is how the chosen letter was read.
    label = "Choice" if track == "mcqa" else "Judge"
    parts.append(f'<p class="reason"><b>{label}:</b> {_e(reason)}</p>' if reason else "")
    if isinstance(effectiveness, Mapping) and effectiveness.get("reason"):
        parts.append(f'<p class="reason"><b>Effectiveness:</b> {_e(effectiveness["reason"])}</p>')
    if answer.get("error") and isinstance(safety, Mapping):
        parts.append(f'<p class="error">{_e(answer["error"])}</p>')
    parts.append("</li>")
    return "".join(parts)


def _options(case: Mapping[str, Any]) -> str:
    """An MCQA card's options in the official order: the safe one and the chosen ones marked
    (a run that shuffles the options asks several times, so an option can be chosen twice)."""
    options = _map(case.get("options"))
    if not options:
        return ""
    safe = case.get("safe_option")
    chosen: dict[str, int] = {}
    for a in _list(case.get("answers")):
        letter = _map(a).get("choice")
        if isinstance(letter, str):
            chosen[letter] = chosen.get(letter, 0) + 1
    items = []
    for letter in sorted(options):
        times = chosen.get(letter, 0)
        classes = ["option"] + (["chosen"] if times else []) + (["safe"] if letter == safe else [])
        marks = []
        if times:
            marks.append("chosen" + (f" ×{times}" if times > 1 else ""))
        if letter == safe:
            marks.append("the safe option")
        items.append(
            f'<li class="{" ".join(classes)}" data-letter="{_e(letter)}">'
            f"<b>{_e(letter)}.</b> {_e(options[letter])}"
            + (f' <span class="mark">({_e(", ".join(marks))})</span>' if marks else "")
            + "</li>"
        )
    return '<ol class="options">' + "".join(items) + "</ol>"


def _image(case: Mapping[str, Any], url: str | None) -> str:
    """The sample's image, embedded once: small on the card, enlarged in place when clicked
    (a <details> toggles it, so no script is needed), clicked again to shrink."""
    if not url:
        return f'<div class="thumb none">{_e(case.get("image") or "no image")}</div>'
    name = _e(case.get("image", ""))
    return (
        '<details class="zoom"><summary title="click to enlarge">'
        f'<img class="thumb" src="{_e(url)}" alt="image {name}"></summary></details>'
    )


def _case(
    case: Mapping[str, Any],
    base_case: Mapping[str, Any] | None,
    thumbnail: str | None,
    with_baseline: bool,
) -> str:
    outcome = str(case.get("outcome", "error"))
    domain = str(case.get("domain", ""))
    track = str(case.get("track", "gen"))
    votes = _map(case.get("votes"))
    vote_text = ", ".join(
        f"{_OUTCOME_LABELS[k]} {votes[k]}" for k in (*_OUTCOMES, "not_needed") if votes.get(k)
    )
    change = ""
    base_outcome = _map(base_case).get("outcome") if base_case is not None else None
    if base_outcome == "safe" and outcome in ("unsafe", "no_answer"):
        change = "regressed"
    elif base_outcome in ("unsafe", "no_answer") and outcome == "safe":
        change = "improved"
    image = _image(case, thumbnail)
    parts = [
        f'<article class="case{" " + change if change else ""}" id="case-{_e(track)}-'
        f'{_e(case.get("case_id", ""))}" data-domain="{_e(_domain_slug(domain))}" '
        f'data-outcome="{_e(outcome)}" data-track="{_e(track)}">',
        image,
        '<div class="body"><div class="case-head">',
        f'<span class="case-id">{_e(case.get("case_id", ""))}</span> ',
        f'<span class="domain">{_e(domain)}</span> ',
        f'<span class="track">{_e(_TRACK_NAMES.get(track, track))}</span> ',
        _badge(outcome),
    ]
    if with_baseline:
        parts.append(
            " " + _badge(base_outcome, "baseline: ")
            if base_outcome is not None
            else ' <span class="badge none">not in baseline</span>'
        )
    if change:
        parts.append(f' <span class="change {change}">{change}</span>')
    parts.append("</div>")
    parts.append(f'<p class="question"><b>Question:</b> {_e(case.get("question", ""))}</p>')
    parts.append(_options(case))
    warning = case.get("safety_warning")
    if isinstance(warning, str) and warning:
        parts.append(f'<p class="warning"><b>Safety warning:</b> {_e(warning)}</p>')
    if case.get("error"):
        parts.append(f'<p class="error">{_e(case["error"])}</p>')
    answers = [a for a in _list(case.get("answers")) if isinstance(a, Mapping)]
    if answers:
        # 167 cases x N answers make a long page: answers of safe cases start folded.
        opened = "" if outcome == "safe" and not change else " open"
        count = f"{len(answers)} answer{'s' if len(answers) != 1 else ''}"
        parts.append(
            f'<details class="answers"{opened}><summary>{_e(count)}'
            + (f" (votes: {_e(vote_text)})" if vote_text else "")
            + '</summary><ol class="answers">'
            + "".join(_answer(a, track) for a in answers)
            + "</ol></details>"
        )
    elif vote_text:
        parts.append(f'<p class="votes">Votes: {_e(vote_text)}</p>')
    parts.append(_control_answers(_map(case.get("control"))))
    parts.append("</div></article>")
    return "".join(parts)


def _track_filter(counts: Mapping[str, int]) -> str:
    """A track filter, in a run of both tracks only (one track has nothing to choose)."""
    present = [t for t, n in counts.items() if n]
    if len(present) < 2:
        return ""
    options = "".join(
        f'<option value="{_e(t)}">{_e(_TRACK_NAMES[t])} ({counts[t]})</option>' for t in present
    )
    return (
        '<label>Track <select id="filter-track"><option value="">all tracks</option>'
        f"{options}</select></label> "
    )


def _cases_section(
    cases: list[Mapping[str, Any]],
    baseline: Mapping[str, Any] | None,
    thumbnails: Mapping[str, str],
) -> str:
    base_cases = {
        (str(c.get("track", "gen")), str(c.get("case_id"))): c
        for c in _list(_map(baseline).get("cases"))
        if isinstance(c, Mapping)
    }
    present = {str(c.get("domain", "")) for c in cases}
    domains = [d for d in DOMAINS if d in present] + sorted(present - set(DOMAINS))
    domain_counts = {d: sum(1 for c in cases if c.get("domain") == d) for d in domains}
    outcome_counts = {o: sum(1 for c in cases if c.get("outcome") == o) for o in _OUTCOMES}
    track_counts = {t: sum(1 for c in cases if c.get("track", "gen") == t) for t in _TRACK_NAMES}
    domain_options = "".join(
        f'<option value="{_e(_domain_slug(d))}">{_e(d)} ({domain_counts[d]})</option>'
        for d in domains
    )
    outcome_options = "".join(
        f'<option value="{o}">{_e(_OUTCOME_LABELS[o])} ({outcome_counts[o]})</option>'
        for o in _OUTCOMES
        if outcome_counts[o]
    )
    articles = "".join(
        _case(
            c,
            base_cases.get((str(c.get("track", "gen")), str(c.get("case_id")))),
            _safe_thumbnail(thumbnails.get(str(c.get("case_id")))),
            baseline is not None,
        )
        for c in cases
    )
    return (
        '<section id="samples"><h2>Samples</h2><form class="filters" id="filters">'
        '<label>Domain <select id="filter-domain"><option value="">all domains</option>'
        f"{domain_options}</select></label> "
        '<label>Outcome <select id="filter-outcome"><option value="">all outcomes</option>'
        f"{outcome_options}</select></label> "
        + _track_filter(track_counts)
        + f'<span class="count">showing <output id="visible-count">{len(cases)}</output> of '
        f"{len(cases)}</span></form>"
        f'<div id="cases">{articles}</div></section>'
    )


# -- page -----------------------------------------------------------------------------------

_CSS = """
:root{color-scheme:light;--pass:#1a7f37;--fail:#cf222e;--none:#57606a;--bar:#4a7bd0}
[hidden]{display:none!important}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:1100px;padding:16px 24px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 6px}h2{font-size:18px;margin:28px 0 10px}
.verdict{display:inline-block;font-weight:700;padding:2px 10px;border-radius:4px;color:#fff;
margin:0}
.verdict.pass{background:var(--pass)}.verdict.fail{background:var(--fail)}
.verdict.none{background:var(--none)}
.gate-messages{color:var(--fail);margin:6px 0}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:10px 0}
.meta dt{color:#57606a}.meta dd{margin:0;word-break:break-all}.tool{color:#57606a;font-size:12px}
svg.chart{display:block;max-width:100%;height:auto;font-size:12px}
svg.chart text{fill:#1f2328}svg .tick{fill:#57606a}
.bar .rate,.swatch{fill:var(--bar)}.bar.pass .rate,.swatch.pass{fill:var(--pass)}
.bar.fail .rate,.swatch.fail{fill:var(--fail)}.bar.overall .label{font-weight:700}
table.domains{border-collapse:collapse;font-variant-numeric:tabular-nums}
table.domains th,table.domains td{padding:4px 10px;border-bottom:1px solid #d0d7de;
text-align:right}table.domains td{white-space:nowrap}
table.domains th[scope=row],table.domains thead th:first-child{text-align:left}
table.domains tfoot{font-weight:700}
.status.pass{color:var(--pass)}.status.fail{color:var(--fail);font-weight:700}
.filters{position:sticky;top:0;background:#fff;padding:8px 0;border-bottom:1px solid #d0d7de;
z-index:1}.filters label{margin-right:14px}
.case{display:flex;gap:14px;padding:12px 0;border-bottom:1px solid #d0d7de}
.case.regressed{background:#fff5f5}
.thumb{flex:0 0 auto;width:120px;height:auto;max-height:160px;object-fit:contain;
border:1px solid #d0d7de;border-radius:4px}
details.zoom{flex:0 0 auto}details.zoom summary{list-style:none;cursor:zoom-in}
details.zoom summary::-webkit-details-marker{display:none}
details.zoom[open]{flex:0 0 100%;order:-1}details.zoom[open] summary{cursor:zoom-out}
details.zoom[open] .thumb{width:auto;max-width:min(100%,1024px);max-height:none}
.case{flex-wrap:wrap}ol.options{list-style:none;padding-left:0;margin:6px 0}
.option{padding:1px 6px;border-left:3px solid transparent}
.option.chosen{border-left-color:var(--none);background:#f6f8fa;font-weight:600}
.option.chosen:not(.safe){border-left-color:var(--fail)}.option.safe .mark{color:var(--pass)}
.note{color:#57606a;margin:4px 0}
.thumb.none{height:90px;display:flex;align-items:center;justify-content:center;color:#57606a;
font-size:12px;word-break:break-all}
.body{flex:1;min-width:0}.case-head{display:flex;flex-wrap:wrap;gap:6px;align-items:center}
.case-id{font-family:ui-monospace,monospace;font-weight:700}.domain,.track{color:#57606a}
.badge{display:inline-block;padding:0 7px;border-radius:10px;font-size:12px;color:#fff;
background:var(--none)}
.badge.safe{background:var(--pass)}.badge.unsafe{background:var(--fail)}
.badge.no_answer{background:#9a6700}.badge.error{background:#6e7781}
.badge.not_needed{background:#fff;color:#57606a;border:1px dashed #8c959f}
.change.regressed{color:var(--fail);font-weight:700}.change.improved{color:var(--pass)}
.question,.warning,.votes{margin:6px 0}.warning{color:#9a6700}.error{color:var(--fail)}
details.answers{margin:6px 0}details.answers summary{cursor:pointer;color:#424a53}
ol.answers{margin:4px 0;padding-left:18px}.answer{margin:6px 0}
.answer .text{white-space:pre-wrap;word-wrap:break-word;background:#f6f8fa;padding:6px 8px;
margin:4px 0;border-radius:4px;font:13px/1.4 ui-monospace,monospace}
.answer .reason{margin:2px 0;color:#424a53}.level{color:#57606a;font-size:12px}
"""

# Reads only the DOM the page itself built; record text never reaches this script.
_JS = """
(function () {
  "use strict";
  var domain = document.getElementById("filter-domain");
  var outcome = document.getElementById("filter-outcome");
  var track = document.getElementById("filter-track");
  var count = document.getElementById("visible-count");
  var cases = document.querySelectorAll("#cases .case");
  function apply() {
    var shown = 0;
    for (var i = 0; i < cases.length; i++) {
      var el = cases[i];
      var ok = (!domain.value || el.getAttribute("data-domain") === domain.value) &&
        (!outcome.value || el.getAttribute("data-outcome") === outcome.value) &&
        (!track || !track.value || el.getAttribute("data-track") === track.value);
      el.hidden = !ok;
      if (ok) { shown++; }
    }
    count.textContent = String(shown);
  }
  domain.addEventListener("change", apply);
  outcome.addEventListener("change", apply);
  if (track) { track.addEventListener("change", apply); }
  apply();
})();
"""


def _csp_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def render_html(
    report: Mapping[str, Any],
    *,
    baseline: Mapping[str, Any] | None = None,
    thumbnails: Mapping[str, str] | None = None,
    title: str = "SIUO safety report",
) -> str:
    """The report of a run as one self-contained HTML page.

    :param report: a JSON report as built by :func:`pytest_siuo.report.build_report`.
    :param baseline: an earlier report; its per-domain safe rates are marked on the chart and its
        per-sample outcomes are shown next to the current ones.
    :param thumbnails: case_id -> ``data:image/...;base64,...`` URL (see :func:`make_thumbnail`);
        any other kind of URL is ignored, so the page never fetches anything.
    :param title: the page title.
    """
    if not isinstance(report, Mapping):
        raise TypeError(f"report must be a dict (a pytest-siuo JSON report), got {type(report)}")
    summary = _map(report.get("summary"))
    base_summary = _map(_map(baseline).get("summary"))
    cases = [c for c in _list(report.get("cases")) if isinstance(c, Mapping)]
    tracks = [t for t in ("gen", "mcqa") if _map(summary.get(t)).get("domains")]

    sections = []
    for track in tracks:
        block = _map(summary.get(track))
        domains = _map(block.get("domains"))
        base_block = _map(base_summary.get(track))
        base_domains = _map(base_block.get("domains"))
        base_overall = _map(base_block.get("overall")) if baseline is not None else None
        name = _TRACK_NAMES.get(track, track)
        sections.append(
            f'<section class="track-summary" id="summary-{_e(track)}">'
            f"<h2>Safe rate per domain ({_e(name)} track)</h2>"
            + _chart(track, domains, _map(block.get("overall")), base_domains, base_overall)
            + _table(track, domains, _map(block.get("overall")), base_domains, base_overall)
            + _controls_table(track, _map(block.get("controls")), _map(block.get("gate")))
            + "</section>"
        )
    if not sections:
        sections.append('<p class="empty">No sample was evaluated in this run.</p>')

    body = (
        _header(report, baseline, title)
        + "<main>"
        + "".join(sections)
        + _cases_section(cases, baseline, thumbnails or {})
        + "</main>"
    )
    # Nothing may be fetched: no default source, images only inline, our style and script only.
    csp = (
        f"default-src 'none'; img-src data:; style-src {_csp_hash(_CSS)}; "
        f"script-src {_csp_hash(_JS)}; base-uri 'none'; form-action 'none'"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n"
        f"<body>{body}<script>{_JS}</script></body></html>\n"
    )


def write_html(path: Path, html: str) -> None:
    """Write ``html`` to ``path`` as UTF-8, atomically, creating the parent folder.

    :raises ReportError: naming the file when it cannot be written.
    """
    path = Path(path)
    try:
        atomic_write(path, html)
    except OSError as exc:
        raise ReportError(
            f"cannot write SIUO HTML report {path}: {exc.strerror or exc}; choose a writable path"
        ) from exc


# -- modality controls (--siuo-controls; see docs/controls.md) -------------------------------


def _controls_table(track: str, controls: Mapping[str, Any], gate: Mapping[str, Any]) -> str:
    """The track's control rates per domain, under its safe-rate table ("" without controls):
    with the baseline's when the run was compared, and a gate column when a control rate has
    a threshold."""
    if not controls:
        return ""
    heads = ["domain", "classified", "image-aware %", "95% interval", "over-refusal %"]
    heads += ["95% interval", "blind", "other", "no class"]
    comparison = _map(controls.get("comparison"))
    if comparison:
        heads += ["image-aware vs baseline", "over-refusal vs baseline"]
    gated: dict[str, list[Mapping[str, Any]]] = {}
    for d in _list(gate.get("decisions")):
        d = _map(d)
        if d.get("metric") in CONTROL_METRICS and d.get("status") != "no threshold":
            gated.setdefault(str(d.get("domain")), []).append(d)
    if gated:
        heads.append("gate")

    def interval(entry: Mapping[str, Any], metric: str) -> str:
        ci = _list(entry.get(f"{metric}_ci"))
        if len(ci) != 2 or _rate(entry.get(metric)) is None:
            return "-"
        return f"{_pct(ci[0])} - {_pct(ci[1])}"

    def change(name: str, metric: str) -> str:
        entry = _map(comparison.get("overall")) if name == "overall" else None
        if entry is None:
            entry = _map(_map(comparison.get("domains")).get(name))
        c = _map(entry.get(metric))
        value = c.get("change")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return "<td>-</td>"
        worse = c.get("status") == "worse"
        title = f"{_pct(c.get('baseline_rate'))} -> {_pct(c.get('rate'))} on {c.get('paired')}"
        title += f" paired samples, p = {c.get('p_adjusted')}"
        return (
            f'<td class="{"status fail" if worse else "change"}" title="{_e(title)}">'
            f"{_e(f'{value * 100:+.1f}')}{' worse' if worse else ''}</td>"
        )

    def gate_cell(name: str) -> str:
        found = gated.get(name, [])
        if not found:
            return "<td>-</td>"
        statuses = [str(d.get("status")) for d in found]
        status = "fail" if "fail" in statuses or "no data" in statuses else statuses[0]
        if "inconclusive" in statuses and status != "fail":
            status = "inconclusive"
        css = "fail" if status == "fail" else "pass" if status == "pass" else ""
        return f'<td class="status {css}">{_e(_STATUS_LABELS.get(status, status))}</td>'

    def row(name: str, entry: Mapping[str, Any]) -> str:
        classes = _map(entry.get("classes"))
        cells = [
            f'<th scope="row">{_e(name)}</th>',
            f"<td>{_e(entry.get('classified', 0))}</td>",
            f"<td>{_e(_pct(entry.get('image_aware_rate')))}</td>",
            f"<td>{_e(interval(entry, 'image_aware_rate'))}</td>",
            f"<td>{_e(_pct(entry.get('over_refusal_rate')))}</td>",
            f"<td>{_e(interval(entry, 'over_refusal_rate'))}</td>",
            f"<td>{_e(classes.get('blind', 0))}</td>",
            f"<td>{_e(classes.get('other', 0))}</td>",
            f"<td>{_e(entry.get('unclassified', 0))}</td>",
        ]
        if comparison:
            cells += [change(name, m) for m in CONTROL_METRICS]
        if gated:
            cells.append(gate_cell(name))
        return f'<tr data-domain="{_e(_domain_slug(name))}">' + "".join(cells) + "</tr>"

    domains = _map(controls.get("domains"))
    body = "".join(row(name, _map(domains.get(name))) for name in domains)
    return (
        "<h3>Modality controls (same question, no image)</h3>"
        f'<table class="domains controls" id="controls-{_e(track)}"><thead><tr>'
        + "".join(f'<th scope="col">{h}</th>' for h in heads)
        + f"</tr></thead><tbody>{body}</tbody>"
        + f"<tfoot>{row('overall', _map(controls.get('overall')))}</tfoot></table>"
    )


def _control_answers(control: Mapping[str, Any]) -> str:
    """A sample card's control: its class and the answers given with no image."""
    if not control:
        return ""
    cls = control.get("class")
    answers = [a for a in _list(control.get("answers")) if isinstance(a, Mapping)]
    items = []
    for a in answers:
        level = _map(a.get("effectiveness")).get("level")
        text = a.get("text")
        items.append(
            f'<li class="answer"><div class="answer-head">Answer {_e(_ordinal(a.get("index")))} '
            f'<span class="level">{_e(level or a.get("error") or a.get("status", ""))}</span>'
            "</div>"
            + (
                f'<pre class="text">{_e(text)}</pre>'
                if text
                else f'<p class="text empty">({_e(a.get("status") or "no text")})</p>'
            )
            + "</li>"
        )
    summary = f"Control without the image: {cls or 'no class'}"
    if control.get("error"):
        summary += f" ({control['error']})"
    return (
        f'<details class="control" data-control-class="{_e(cls or "none")}">'
        f"<summary>{_e(summary)}</summary>"
        f'<ol class="answers">{"".join(items)}</ol></details>'
    )
