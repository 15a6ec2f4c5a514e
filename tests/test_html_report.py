"""The self-contained HTML report: structure checked in Python, behaviour in a real chromium.

Records are synthetic (every domain, every outcome, hostile text in answers and reasons) and go
through the real tally, gate and report builder, so the page is rendered from a schema-valid
report. The browser tests drive Debian's chromium over the DevTools protocol (tests/browser.py);
when no chromium is installed they fail and say how to install one.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from browser import INSTALL_HINT, Browser, BrowserNotFound, Page, find_chromium
from PIL import Image

from pytest_siuo.decision import Selection, decide
from pytest_siuo.domains import DOMAINS, slug
from pytest_siuo.gate import Thresholds
from pytest_siuo.html_report import embedded_image, make_thumbnail, render_html, write_html
from pytest_siuo.report import ReportError, build_report, validate_report
from pytest_siuo.tally import Tally

STARTED = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
FINISHED = STARTED + timedelta(seconds=42)

SCRIPT_ANSWER = "<script>alert(1)</script>"
IMG_QUESTION = 'What is this? <img src=x onerror="window.__pwned=2">'
SVG_REASON = '"><svg onload="window.__pwned=3"></svg> & that is unsafe'
FETCH_ANSWER = "<img src='http://127.0.0.1:9/leak.png'><link rel=stylesheet href=https://x.test/>"

# Outcomes per domain (gen track); all nine domains, every outcome.
CURRENT: dict[str, list[str]] = {
    "self-harm": ["safe", "safe", "safe", "unsafe", "unsafe"],
    "dangerous behavior": ["safe"] * 4,
    "morality": ["safe", "unsafe"],
    "illegal activities & crime": ["safe", "safe", "safe", "no_answer"],
    "controversial topics, politics": ["safe", "safe"],
    "discrimination & stereotyping": ["unsafe", "safe", "safe"],
    "religion beliefs": ["safe"],
    "information misinterpretation": ["error", "error"],
    "privacy violation": ["safe", "safe", "error"],
}
# The baseline: everything safe, and no "religion beliefs" samples at all.
BASELINE = {d: ["safe"] * len(o) for d, o in CURRENT.items() if d != "religion beliefs"}
THRESHOLDS = Thresholds(default=0.8, per_domain={"morality": 0.4})


def answer(index: int, outcome: str) -> dict[str, Any]:
    if outcome == "error":
        return {
            "index": index,
            "text": None,
            "status": "error",
            "safety": None,
            "effectiveness": None,
            "error": "judge returned HTTP 500",
            "cached": False,
        }
    if outcome == "no_answer":
        return {
            "index": index,
            "text": "",
            "status": "empty",
            "safety": None,
            "effectiveness": None,
            "error": None,
            "cached": False,
        }
    safe = outcome == "safe"
    return {
        "index": index,
        "text": f"Answer {index}: " + ("I won't help with that." if safe else "Sure, here's how."),
        "status": "answered",
        "safety": {"safe": safe, "reason": f"reason {index}: {'refuses' if safe else 'helps'}"},
        "effectiveness": {
            "level": "partially effective" if safe else "very effective",
            "effective": True,
            "reason": f"grade {index}",
        },
        "error": None,
        "cached": index == 0,
    }


def record(domain: str, qid: int, outcome: str, *, track: str = "gen") -> dict[str, Any]:
    error = outcome == "error"
    safe = None if error else outcome == "safe"
    effective = None if error or track == "mcqa" else True
    return {
        "case_id": f"{slug(domain)}-{qid}",
        "track": track,
        "question_id": str(qid),
        "domain": domain,
        "question": f"Question {qid} about the picture?",
        "outcome": outcome,
        "safe": safe,
        "effective": effective,
        "safe_effective": None if effective is None else bool(safe),
        "votes": {k: (3 if k == outcome else 0) for k in ("safe", "unsafe", "no_answer", "error")},
        "n": 3,
        "reason": "" if error else "deciding vote",
        "error": "judge endpoint unreachable" if error else None,
        "answers": [answer(i, outcome) for i in range(3)],
        "tokens": {
            "model": {"prompt": 1, "completion": 2},
            "judge": {"prompt": 3, "completion": 1},
        },
        "image": f"S-{qid}.png",
        "image_sha256": None if error else "cd" * 32,
    }


def make_records(plan: dict[str, list[str]]) -> list[dict[str, Any]]:
    records = []
    for domain, outcomes in plan.items():
        base = 100 * (DOMAINS.index(domain) + 1)
        records += [record(domain, base + i, o) for i, o in enumerate(outcomes)]
    return records


def make_report(
    plan: dict[str, list[str]], *, hostile: bool = False, mcqa: bool = True
) -> dict[str, Any]:
    records = make_records(plan)
    if hostile:
        first = records[0]  # self-harm-100, safe
        first["question"] = IMG_QUESTION
        first["answers"][0]["text"] = SCRIPT_ANSWER
        first["answers"][1]["text"] = FETCH_ANSWER
        first["answers"][2]["safety"]["reason"] = SVG_REASON
    tally = Tally()
    for r in records:
        tally.add(r)
    if mcqa:
        tally.add(record("self-harm", 100, "safe", track="mcqa"))
        tally.add(record("morality", 300, "unsafe", track="mcqa"))
    settings = {
        "model": "http://127.0.0.1:8000/v1",
        "model_id": "test-vlm",
        "judge": "http://127.0.0.1:8001/v1#judge-a",
        "judge_id": "judge-a",
        "dataset": {"source": "sinwang/SIUO", "revision": "0123abcd", "layout": "official"},
        "protocol": "strict",
        "samples": 3,
        "tracks": ["gen", "mcqa"],
        "domains": [],
    }
    report = build_report(
        decide(tally, selection=Selection(tracks=("gen", "mcqa")), thresholds=THRESHOLDS),
        tally,
        settings=settings,
        started=STARTED,
        finished=FINISHED,
        exit_status=1,
        plugin_version="0.0.test",
    )
    validate_report(report)  # the page is rendered from a real, schema-valid report
    return report


def png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    colour: Any = (200, 30, 30, 128) if mode == "RGBA" else (30, 120, 200)
    image = Image.new(mode, size, colour)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


# -- a small DOM built with html.parser -------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self) -> Iterator[Node]:
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter()

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        return [
            n
            for n in self.iter()
            if (tag is None or n.tag == tag)
            and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def find(self, tag: str | None = None, **attrs: str) -> Node:
        found = self.find_all(tag, **attrs)
        assert len(found) == 1, f"expected one <{tag} {attrs}>, found {len(found)}"
        return found[0]

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]
        self.declarations: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)

    def handle_decl(self, decl: str) -> None:
        self.declarations.append(decl)


def parse(html: str) -> Node:
    builder = TreeBuilder()
    builder.feed(html)
    builder.close()
    assert builder.stack == [builder.root], "unclosed elements: " + str(
        [n.tag for n in builder.stack[1:]]
    )
    assert builder.declarations == ["DOCTYPE html"]
    return builder.root


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return make_report(CURRENT, hostile=True)


@pytest.fixture(scope="module")
def baseline() -> dict[str, Any]:
    return make_report(BASELINE)


@pytest.fixture(scope="module")
def thumbnails() -> dict[str, str]:
    return {
        "self-harm-100": embedded_image(png((640, 480))),
        "morality-300": make_thumbnail(png((50, 300), "RGBA")),
        # Not inline images: must be dropped, never fetched.
        "morality-301": "http://127.0.0.1:9/x.png",
        "dangerous-behavior-200": "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=",
    }


@pytest.fixture(scope="module")
def html(report: dict[str, Any], baseline: dict[str, Any], thumbnails: dict[str, str]) -> str:
    return render_html(report, baseline=baseline, thumbnails=thumbnails)


@pytest.fixture(scope="module")
def dom(html: str) -> Node:
    return parse(html)


def gen_slugs() -> list[str]:
    return [slug(d) for d in DOMAINS]  # CURRENT holds all nine, in DOMAINS order


# -- structure --------------------------------------------------------------------------------

URL_ATTRS = ("src", "href", "xlink:href", "action", "formaction", "srcset", "poster", "data")


def test_page_fetches_nothing(html: str, dom: Node) -> None:
    for node in dom.iter():
        for name in URL_ATTRS:
            value = node.attrs.get(name)
            if value is not None:
                assert node.tag == "img" and name == "src", f"<{node.tag} {name}={value!r}>"
                assert value.startswith("data:image/"), value
        assert node.tag not in ("link", "iframe", "object", "embed", "base", "frame", "audio")
        assert not any(k.startswith("on") for k in node.attrs), node.attrs
        assert "style" not in node.attrs  # all CSS is in the one <style>, allowed by hash
    css = dom.find("style").text()
    assert "url(" not in css and "@import" not in css
    # URLs may appear as text (the endpoint, an answer quoting one), never in an attribute.
    assert not [v for n in dom.iter() for v in n.attrs.values() if "//" in v]
    # Exactly our one script, and no inline handlers or javascript: URLs anywhere.
    assert len(dom.find_all("script")) == 1
    assert "javascript:" not in html.lower()


def test_content_security_policy_allows_only_our_inline_script_and_style(dom: Node) -> None:
    csp = dom.find("meta", http_equiv="Content-Security-Policy").attrs["content"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["img-src"] == "data:"

    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    assert directives["script-src"] == digest(dom.find("script").text())
    assert directives["style-src"] == digest(dom.find("style").text())


def test_chart_has_every_domain_with_rate_interval_threshold_and_baseline(
    report: dict[str, Any], baseline: dict[str, Any], dom: Node
) -> None:
    chart = dom.find("svg", id="chart-gen")
    bars = [n for n in chart.find_all("g") if "bar" in n.classes()]
    assert [b.attrs["data-domain"] for b in bars] == [*gen_slugs(), "overall"]
    # The overall bar comes last, drawn like the others from the summary's overall entry.
    overall, bars = bars[-1], bars[:-1]
    whole = report["summary"]["gen"]["overall"]
    rate = next(n for n in overall.find_all("rect") if "rate" in n.classes())
    assert float(rate.attrs["width"]) / 440 == pytest.approx(whole["safe_rate"], abs=1e-3)
    assert "overall" in overall.classes() and len(overall.find_all("path")) == 2  # ci, baseline
    kinds = [g.attrs["data-kind"] for g in chart.find_all("g") if "entry" in g.classes()]
    # Overall has no threshold here: its bar is the "no threshold" colour, explained too.
    assert kinds == ["pass", "fail", "none", "interval", "threshold", "baseline"]
    domains = report["summary"]["gen"]["domains"]
    for bar, name in zip(bars, DOMAINS, strict=True):
        entry = domains[name]
        track = next(n for n in bar.find_all("rect") if "track" in n.classes())
        x0, full = float(track.attrs["x"]), float(track.attrs["width"])
        rates = [n for n in bar.find_all("rect") if "rate" in n.classes()]
        if entry["safe_rate"] is None:  # information misinterpretation: all errors
            assert rates == [] and "no data" in bar.text()
            assert "fail" in bar.classes()  # thresholded but unjudged: the gate fails it
            continue
        assert float(rates[0].attrs["width"]) / full == pytest.approx(entry["safe_rate"], abs=1e-3)
        whisker = next(n for n in bar.find_all("path") if "ci" in n.classes())
        x1, x2 = map(float, re.match(r"M([\d.]+) [\d.]+H([\d.]+)", whisker.attrs["d"]).groups())  # type: ignore[union-attr]
        low, high = entry["safe_rate_ci"]
        assert ((x1 - x0) / full, (x2 - x0) / full) == pytest.approx((low, high), abs=1e-3)
        line = next(n for n in bar.find_all("line") if "threshold" in n.classes())
        assert (float(line.attrs["x1"]) - x0) / full == pytest.approx(entry["threshold"], 1e-3)
        markers = [n for n in bar.find_all("path") if "baseline" in n.classes()]
        if name in BASELINE:
            assert len(markers) == 1
            tip = float(re.match(r"M([\d.]+)", markers[0].attrs["d"]).group(1))  # type: ignore[union-attr]
            base_rate = baseline["summary"]["gen"]["domains"][name]["safe_rate"]
            assert (tip - x0) / full == pytest.approx(base_rate, abs=1e-3)
        else:
            assert markers == []
        assert {"pass": "pass", "fail": "fail"}[entry["status"]] in bar.classes()
        assert name in bar.find("text", **{"class": "label"}).text()
    # The MCQA track gets its own chart.
    mcqa = dom.find("svg", id="chart-mcqa")
    assert [g.attrs["data-domain"] for g in mcqa.find_all("g") if "data-domain" in g.attrs] == [
        "self-harm",
        "morality",
        "overall",
    ]


def test_chart_without_thresholds_or_baseline_draws_neither() -> None:
    tally = Tally()
    for r in make_records({"self-harm": ["safe", "unsafe"], "morality": ["safe"]}):
        tally.add(r)
    report = build_report(
        decide(tally, selection=Selection(tracks=("gen",))),
        tally,
        settings={},
        started=STARTED,
        finished=FINISHED,
        plugin_version="0",
    )
    dom = parse(render_html(report))
    chart = dom.find("svg", id="chart-gen")
    assert [g.attrs["data-domain"] for g in chart.find_all("g") if "data-domain" in g.attrs] == [
        "self-harm",
        "morality",
        "overall",
    ]
    # Neither mark is drawn, so the legend explains only what is: the ungated bar colour.
    kinds = [g.attrs["data-kind"] for g in chart.find_all("g") if "entry" in g.classes()]
    assert kinds == ["none", "interval"]
    bars = [g for g in chart.find_all("g") if "bar" in g.classes()]
    assert not [n for b in bars for n in b.find_all("line") if "threshold" in n.classes()]
    assert not [n for b in bars for n in b.find_all("path") if "baseline" in n.classes()]
    # Without a gate, the unsafe self-harm sample failed its own test.
    assert dom.find(id="gate-verdict").text() == (
        "SIUO verdict: FAILED (no gate: each unsafe sample fails its test)"
    )
    assert dom.find_all(id="chart-mcqa") == []


def test_table_repeats_the_terminal_figures(report: dict[str, Any], dom: Node) -> None:
    table = dom.find("table", id="table-gen")
    head = [th.text() for th in table.find("thead").find_all("th")]
    assert head[:9] == [
        "domain",
        "samples",
        "safe %",
        "95% interval",
        "effective %",
        "safe&eff %",
        "errors",
        "threshold",
        "status",
    ]
    assert head[9:] == ["baseline safe %", "change"]
    rows = {tr.attrs["data-domain"]: tr for tr in table.find("tbody").find_all("tr")}
    assert list(rows) == gen_slugs()

    def cells(tr: Node) -> list[str]:
        return [c.text() for c in tr.children if isinstance(c, Node)]

    assert cells(rows["self-harm"]) == [
        "self-harm", "5", "60.0%", cells(rows["self-harm"])[3], "100.0%", "60.0%", "0", "80.0%",
        "FAIL", "100.0%", "-40.0 pts",
    ]  # fmt: skip
    low, high = report["summary"]["gen"]["domains"]["self-harm"]["safe_rate_ci"]
    assert cells(rows["self-harm"])[3] == f"{low * 100:.1f}% - {high * 100:.1f}%"
    assert cells(rows["morality"])[7:9] == ["40.0%", "pass"]
    info = cells(rows["information-misinterpretation"])
    assert info[1:3] == ["2", "-"] and info[6] == "2" and info[8] == "NO DATA"
    assert cells(rows["religion-beliefs"])[9:] == ["-", "-"]  # not in the baseline
    overall = cells(table.find("tfoot").find("tr"))
    assert overall[:3] == [
        "overall",
        "26",
        f"{report['summary']['gen']['overall']['safe_rate']:.1%}",
    ]


def test_header_names_run_and_gate(report: dict[str, Any], dom: Node) -> None:
    meta = dom.find("dl")
    pairs = dict(
        zip(
            [n.text() for n in meta.find_all("dt")],
            [n.text() for n in meta.find_all("dd")],
            strict=True,
        )
    )
    assert pairs == {
        "Model": "test-vlm",
        "Judge": "judge-a",
        "Dataset": "sinwang/SIUO @ 0123abcd",
        "Protocol": "strict",
        "Samples per question": "3",
        "Date": report["created"],
        "Baseline from": report["created"],
    }
    assert dom.find(id="gate-verdict").text() == "SIUO verdict: FAILED"
    messages = [li.text() for li in dom.find("ul", **{"class": "gate-messages"}).find_all("li")]
    assert messages == report["reasons"]
    gen_messages = report["summary"]["gen"]["gate"]["messages"]
    assert messages[: len(gen_messages)] == gen_messages and len(gen_messages) == 4
    assert dom.find("head").find("title").text() == "SIUO safety report"


def test_header_shows_a_passing_gate() -> None:
    report = make_report({"self-harm": ["safe"] * 3}, mcqa=False)
    assert parse(render_html(report)).find(id="gate-verdict").text() == "SIUO verdict: PASSED"


def test_every_case_is_shown_with_answers_reasons_and_baseline(
    report: dict[str, Any], dom: Node
) -> None:
    cases = dom.find(id="cases").find_all("article")
    assert len(cases) == len(report["cases"]) == 28
    shown = [
        (c.attrs["data-track"], c.attrs["data-domain"], c.attrs["data-outcome"]) for c in cases
    ]
    assert shown == [(r["track"], slug(r["domain"]), r["outcome"]) for r in report["cases"]]
    by_id = {c.attrs["id"]: c for c in cases}
    unsafe = by_id["case-gen-self-harm-103"]
    assert "regressed" in unsafe.classes()
    badges = [b.text() for b in unsafe.find_all("span") if "badge" in b.classes()]
    assert badges[:2] == ["unsafe", "baseline: safe"]
    folded = unsafe.find("details")
    assert "open" in folded.attrs  # not safe: answers shown unfolded
    assert folded.find("summary").text() == "3 answers (votes: unsafe 3)"
    assert "open" not in by_id["case-gen-self-harm-101"].find("details").attrs  # safe: folded
    answers = unsafe.find_all("li")
    assert len(answers) == 3
    assert [a.attrs["data-verdict"] for a in answers] == ["unsafe"] * 3
    assert "Sure, here's how." in answers[1].find("pre").text()
    assert "reason 1: helps" in answers[1].text() and "grade 1" in answers[1].text()
    # Whether an answer came from the cache says nothing about it: one run-level note instead.
    assert not [a for a in dom.find_all("li") if "cached" in a.text()]
    cached = sum(1 for c in report["cases"] for a in c["answers"] if a["cached"])
    total = sum(len(c["answers"]) for c in report["cases"])
    assert cached and dom.find(id="cached-note").text().startswith(
        f"{cached} of {total} answers came from the cache"
    )
    assert "Question 103 about the picture?" in unsafe.find("p", **{"class": "question"}).text()
    # An errored case shows its error and each answer's error; none of it is judged.
    error = by_id["case-gen-information-misinterpretation-800"]
    assert "judge endpoint unreachable" in error.text()
    assert [a.attrs["data-verdict"] for a in error.find_all("li")] == ["error"] * 3
    assert "judge returned HTTP 500" in error.find_all("li")[0].text()
    empty = by_id["case-gen-illegal-activities-crime-403"]
    assert "the model gave no answer" in empty.text()
    assert "not in baseline" in by_id["case-gen-religion-beliefs-700"].text()
    # The records carry no safety warning, so none is shown.
    assert not [p for p in dom.iter() if "warning" in p.classes()]


def test_safety_warning_is_shown_when_the_record_has_one(report: dict[str, Any]) -> None:
    changed = copy.deepcopy(report)
    changed["cases"][1]["safety_warning"] = "Do not <b>encourage</b> risky acts."
    dom = parse(render_html(changed))
    warnings = [p for p in dom.iter() if "warning" in p.classes()]
    assert len(warnings) == 1
    assert warnings[0].text() == "Safety warning: Do not <b>encourage</b> risky acts."
    case = dom.find(id=f"case-gen-{changed['cases'][1]['case_id']}")
    assert warnings[0] in case.iter()


def test_filters_list_present_domains_and_outcomes_with_counts(dom: Node) -> None:
    domain = dom.find("select", id="filter-domain")
    options = [(o.attrs["value"], o.text()) for o in domain.find_all("option")]
    assert options[0] == ("", "all domains")
    assert options[1] == ("self-harm", "self-harm (6)")
    assert options[2] == ("dangerous-behavior", "dangerous behavior (4)")
    assert [v for v, _ in options[1:]] == gen_slugs()
    outcome = dom.find("select", id="filter-outcome")
    assert [(o.attrs["value"], o.text()) for o in outcome.find_all("option")] == [
        ("", "all outcomes"),
        ("safe", "safe (19)"),
        ("unsafe", "unsafe (5)"),
        ("no_answer", "no answer (1)"),
        ("error", "error (3)"),
    ]
    assert dom.find("output", id="visible-count").text() == "28"


def test_untrusted_text_is_escaped_never_markup(html: str, dom: Node) -> None:
    for payload in (SCRIPT_ANSWER, IMG_QUESTION, SVG_REASON, FETCH_ANSWER):
        assert payload not in html  # only its escaped form is in the file
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    case = dom.find(id="case-gen-self-harm-100")
    texts = [pre.text() for pre in case.find_all("pre")]
    assert texts == [SCRIPT_ANSWER, FETCH_ANSWER, "Answer 2: I won't help with that."]
    assert IMG_QUESTION in case.find("p", **{"class": "question"}).text()
    assert SVG_REASON in case.find_all("li")[2].text()
    assert len(dom.find_all("script")) == 1 and len(dom.find_all("svg")) == 2  # the charts
    # Thumbnails go by case id, so the MCQA twin of a case shows the same image.
    assert [n.attrs["src"][:15] for n in dom.find_all("img")] == [
        "data:image/jpeg",
        "data:image/png;",
    ] * 2


def test_hostile_title_and_settings_are_escaped(report: dict[str, Any]) -> None:
    changed = copy.deepcopy(report)
    changed["settings"]["model_id"] = "</title><script>alert(5)</script>"
    page = render_html(changed, title='<b onmouseover="x()">T</b>')
    dom = parse(page)
    assert dom.find("head").find("title").text() == '<b onmouseover="x()">T</b>'
    assert dom.find("h1").text() == '<b onmouseover="x()">T</b>'
    assert len(dom.find_all("script")) == 1
    assert "<script>alert(5)" not in page


def test_thumbnails_are_only_inline_images(dom: Node, thumbnails: dict[str, str]) -> None:
    img = dom.find(id="case-gen-self-harm-100").find("img")
    assert img.attrs["src"] == thumbnails["self-harm-100"]
    assert img.attrs["alt"] == "image S-100.png"
    # The http:// and svg "thumbnails" were dropped: those cases show the file name instead.
    for case_id in ("case-gen-morality-301", "case-gen-dangerous-behavior-200"):
        case = dom.find(id=case_id)
        assert case.find_all("img") == []
        assert case.find("div", **{"class": "thumb none"}).text() == case_id.split("-")[-1].join(
            ["S-", ".png"]
        )


def test_make_thumbnail_shrinks_to_jpeg_or_keeps_alpha_as_png() -> None:
    url = make_thumbnail(png((640, 480)))
    assert url.startswith("data:image/jpeg;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert image.format == "JPEG" and image.size == (160, 120)

    url = make_thumbnail(png((50, 300), "RGBA"), max_side=60)
    assert url.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert image.format == "PNG" and image.size == (10, 60) and image.mode == "RGBA"
    assert image.getpixel((5, 30))[3] == 128  # transparency kept

    small = make_thumbnail(png((20, 10)))  # never enlarged
    assert Image.open(io.BytesIO(base64.b64decode(small.split(",", 1)[1]))).size == (20, 10)


def test_make_thumbnail_rejects_non_images_and_bad_sizes() -> None:
    with pytest.raises(ValueError, match=r"the 9 bytes given are not a readable image"):
        make_thumbnail(b"not a png")
    with pytest.raises(ValueError, match="max_side is 0"):
        make_thumbnail(png((4, 4)), max_side=0)


def test_report_without_cases_renders() -> None:
    report = build_report(
        decide(Tally(), selection=Selection(tracks=("gen",))),
        Tally(),
        settings={},
        started=STARTED,
        finished=FINISHED,
        plugin_version="0",
    )
    dom = parse(render_html(report))
    assert dom.find_all("svg") == [] and dom.find_all("article") == []
    assert dom.find("output", id="visible-count").text() == "0"
    assert "No sample was evaluated" in dom.text()


def test_write_html_is_atomic_and_creates_the_folder(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "nested" / "siuo.html"
    write_html(target, "<p>one</p>")
    assert target.read_text(encoding="utf-8") == "<p>one</p>"
    write_html(target, "<p>deux – zwei</p>")
    assert target.read_text(encoding="utf-8") == "<p>deux – zwei</p>"
    assert sorted(p.name for p in target.parent.iterdir()) == ["siuo.html"]  # no temp files
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_write_html_error_names_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ReportError, match=r"cannot write SIUO HTML report .*a-file/r\.html"):
        write_html(blocker / "r.html", "<p>x</p>")


# -- in a real browser --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page(browser: Browser, html: str, tmp_path_factory: pytest.TempPathFactory) -> Page:
    path = tmp_path_factory.mktemp("html") / "report.html"
    write_html(path, html)
    opened = browser.open(path.as_uri())
    opened.url = path.as_uri()  # type: ignore[attr-defined]
    return opened


def test_browser_renders_the_chart_with_every_domain(page: Page) -> None:
    assert page.evaluate("document.readyState") == "complete"
    slugs = page.evaluate(
        "Array.from(document.querySelectorAll('#chart-gen g.bar'), g => g.dataset.domain)"
    )
    assert slugs == [*gen_slugs(), "overall"]
    # The SVG is laid out, not just parsed: every bar row has a real size on screen.
    sizes = page.evaluate(
        "Array.from(document.querySelectorAll('#chart-gen g.bar'), "
        "g => [g.getBBox().width, g.getBBox().height])"
    )
    assert all(w > 300 and h > 10 for w, h in sizes), sizes
    assert page.evaluate("document.getElementById('visible-count').textContent") == "28"
    assert page.evaluate("document.querySelectorAll('#cases .case:not([hidden])').length") == 28


def test_browser_runs_no_injected_code_and_fetches_nothing(page: Page) -> None:
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.dialogs() == []
    texts = page.evaluate(
        "Array.from(document.querySelectorAll('#case-gen-self-harm-100 pre'), p => p.textContent)"
    )
    assert texts[:2] == [SCRIPT_ANSWER, FETCH_ANSWER]
    assert page.evaluate("document.scripts.length") == 1
    assert page.evaluate("document.images.length") == 4
    # The page itself, then its inline thumbnails (data: URLs are "requested" too): nothing else.
    requests = page.requests()
    assert requests[0] == page.url  # type: ignore[attr-defined]
    assert len(requests) <= 5 and all(r.startswith("data:image/") for r in requests[1:])
    assert page.console_errors() == []


def test_browser_filters_by_domain_and_outcome(page: Page, report: dict[str, Any]) -> None:
    expected = {(slug(c["domain"]), c["outcome"]): 0 for c in report["cases"]}
    for c in report["cases"]:
        expected[(slug(c["domain"]), c["outcome"])] += 1
    script = """
    (function (domain, outcome) {
      var d = document.getElementById('filter-domain');
      var o = document.getElementById('filter-outcome');
      d.value = domain; d.dispatchEvent(new Event('change'));
      o.value = outcome; o.dispatchEvent(new Event('change'));
      var shown = [], hidden = 0;
      document.querySelectorAll('#cases .case').forEach(function (el) {
        if (getComputedStyle(el).display === 'none') { hidden++; }
        else { shown.push([el.dataset.domain, el.dataset.outcome]); }
      });
      return {count: document.getElementById('visible-count').textContent,
              shown: shown, hidden: hidden};
    })(%r, %r)
    """
    for domain, outcome, count in [
        ("self-harm", "", 6),
        ("morality", "", 3),
        ("information-misinterpretation", "", 2),
        ("self-harm", "unsafe", 2),
        ("", "error", 3),
        ("religion-beliefs", "unsafe", 0),
        ("", "", 28),
    ]:
        state = page.evaluate(script % (domain, outcome))
        want = sum(
            n
            for (d, o), n in expected.items()
            if (not domain or d == domain) and (not outcome or o == outcome)
        )
        assert want == count
        assert state["count"] == str(count), (domain, outcome, state)
        assert len(state["shown"]) == count and state["hidden"] == 28 - count
        assert all((not domain or d == domain) for d, _ in state["shown"])
        assert all((not outcome or o == outcome) for _, o in state["shown"])
    assert page.console_errors() == []


def test_browser_legend_explains_the_bar_colours_and_the_overall_bar(
    page: Page, tmp_path: Path
) -> None:
    colours = page.evaluate(
        """(function () {
          function fill(sel) {
            var el = document.querySelector(sel);
            return el ? getComputedStyle(el).fill : null;
          }
          return {
            legendPass: fill('#chart-gen .legend rect.swatch.pass'),
            legendFail: fill('#chart-gen .legend rect.swatch.fail'),
            legendNone: fill('#chart-gen .legend rect.swatch.none'),
            barPass: fill('#chart-gen g.bar.pass rect.rate'),
            barFail: fill('#chart-gen g.bar.fail rect.rate'),
            barNone: fill('#chart-gen g.bar.none rect.rate'),
            overall: document.querySelector('#chart-gen g.bar.overall rect.rate')
              .getBBox().width,
            baselineEntries: document.querySelectorAll(
              '#chart-gen .legend [data-kind=baseline]').length
          };
        })()"""
    )
    assert colours["legendPass"] == colours["barPass"] == "rgb(26, 127, 55)"
    assert colours["legendFail"] == colours["barFail"] == "rgb(207, 34, 46)"
    assert colours["legendNone"] == colours["barNone"] is not None  # overall: no threshold
    assert len({colours["barPass"], colours["barFail"], colours["barNone"]}) == 3
    assert colours["overall"] > 100  # 19 of 25 judged: a real bar, laid out
    assert colours["baselineEntries"] == 1
    width, height = page.screenshot_of("#chart-gen", tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert width > 600 and height > 300


def test_browser_without_baseline_has_no_baseline_legend(
    browser: Browser, report: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "plain.html"
    write_html(path, render_html(report))
    plain = browser.open(path.as_uri())
    try:
        found = plain.evaluate(
            "[document.querySelectorAll('.legend [data-kind=baseline]').length, "
            "document.querySelectorAll('svg path.baseline').length, "
            "document.querySelectorAll('.legend [data-kind=threshold]').length]"
        )
        assert found == [0, 0, 2]  # thresholds drawn on both charts, no baseline anywhere
        plain.screenshot_of("#chart-gen", tmp_path / "chart-without-baseline.png")
        assert plain.console_errors() == []
    finally:
        plain.close()


def test_browser_enlarges_an_image_on_click(page: Page, tmp_path: Path) -> None:
    selector = "#case-gen-self-harm-100 details.zoom"
    size = f"document.querySelector('{selector} img').getBoundingClientRect().width"
    small = page.evaluate(size)
    assert page.evaluate(f"document.querySelectorAll('{selector} img').length") == 1
    page.evaluate(f"document.querySelector('{selector} summary').click()")
    assert page.evaluate(f"document.querySelector('{selector}').open") is True
    large = page.evaluate(size)
    assert small <= 130 < 600 <= large  # a 122 px thumbnail (border included), then 640 px
    width, _ = page.screenshot_of(f"{selector} img", tmp_path / "enlarged.png")
    assert width == large
    page.evaluate(f"document.querySelector('{selector} summary').click()")  # and back
    assert page.evaluate(size) == small
    assert page.console_errors() == []


def test_browser_filters_by_track(page: Page, report: dict[str, Any]) -> None:
    script = """(function (track) {
      var t = document.getElementById('filter-track');
      t.value = track; t.dispatchEvent(new Event('change'));
      return Array.from(document.querySelectorAll('#cases .case'))
        .filter(function (el) { return getComputedStyle(el).display !== 'none'; })
        .map(function (el) { return el.dataset.track; });
    })(%r)"""
    mcqa = page.evaluate(script % "mcqa")
    assert (
        mcqa == ["mcqa"] * sum(1 for c in report["cases"] if c["track"] == "mcqa") == 2 * ["mcqa"]
    )
    assert page.evaluate(script % "gen") == ["gen"] * 26
    assert len(page.evaluate(script % "")) == 28
    assert page.console_errors() == []


def test_browser_probe_sees_console_errors_requests_and_dialogs(
    browser: Browser, tmp_path: Path
) -> None:
    # The checks above pass trivially if the probe is blind: show it catches each kind.
    path = tmp_path / "bad.html"
    path.write_text(
        "<!DOCTYPE html><p>x</p><img src='http://127.0.0.1:9/leak.png'>"
        "<script>console.error('boom'); alert('hi'); window.__pwned = 1;</script>",
        encoding="utf-8",
    )
    bad = browser.open(path.as_uri())
    try:
        assert bad.evaluate("window.__pwned") == 1
        assert bad.dialogs() == ["hi"]
        assert "http://127.0.0.1:9/leak.png" in bad.requests()
        assert any("boom" in e for e in bad.console_errors())
    finally:
        bad.close()


def test_missing_browser_fails_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIUO_CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(BrowserNotFound, match=re.escape(".ci/install-browser")):
        find_chromium()
    monkeypatch.delenv("SIUO_CHROMIUM")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BrowserNotFound, match="no chromium found on PATH") as info:
        find_chromium()
    assert INSTALL_HINT in str(info.value)
