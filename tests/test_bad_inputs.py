"""Bad-input catalogue: every bad input names the fault and the fix, with the right exit code.

One table, one test. Each row builds a broken input (dataset row, image, option, pyproject
setting, endpoint spec, answers file, environment), runs the plugin in-process against the
loopback servers and checks three things:

* the exit code: a configuration fault is a usage error (4) before any model call; a fault of
  one sample (its image) errors that sample alone and the other 8 samples still pass;
* the message: an fnmatch pattern naming the file / row / field / option at fault and the fix;
* hygiene: no traceback, no frame of the plugin's own code, nothing huge echoed back, and a
  password given in an endpoint URL never printed.

A message may only name options that exist: every ``--siuo-...`` it mentions is checked
against the plugin's own option table.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import make_rows

from pytest_siuo.options import OPTIONS as ALL_OPTIONS
from pytest_siuo.testing.data import png_bytes, write_official
from pytest_siuo.testing.server import FakeOpenAIServer

USAGE = "usage"  # exit code 4 before any model call
ITEM = "item"  # one sample errors, the 8 others pass
PASSWORD = "pw-canary-5f3a9c"
OPTIONS = {opt.flag for opt in ALL_OPTIONS}
#: A frame of the plugin's own code in a printed traceback.
PLUGIN_FRAME = re.compile(r"pytest_siuo[/\\][\w/\\]+\.py(\"|:\d)")
#: The broken sample of the ITEM rows: question 3, domain morality, image img-003.png.
BROKEN = "img-003.png"


@dataclass
class Ctx:
    pytester: pytest.Pytester
    tmp: Path
    model: FakeOpenAIServer
    judge: FakeOpenAIServer
    monkeypatch: pytest.MonkeyPatch

    def rows(self) -> list[dict[str, Any]]:
        """Nine made-up rows, one per domain, all answered safely by the test model."""
        return make_rows(per_domain=1, bait=set())

    def data(self, rows: list[Any] | None = None, *, mcqa: bool = False) -> Path:
        return write_official(self.tmp / "data", self.rows() if rows is None else rows, mcqa=mcqa)

    def args(self, data: Path | None = None, *, model: bool = True) -> list[str]:
        out = [
            "--siuo",
            f"--siuo-judge={self.judge.base_url}#judge-a",
            f"--siuo-data={data or self.data()}",
            "--siuo-retry-backoff=0.01",
            "--siuo-cache=off",
        ]
        if model:
            out.append(f"--siuo-model={self.model.base_url}")
        return out

    def with_image(self, content: bytes | None) -> list[str]:
        """A good dataset whose image of question 3 is replaced (None: left to the caller)."""
        data = self.data()
        if content is not None:
            (data / "images" / BROKEN).write_bytes(content)
        return self.args(data)

    def answers(self, content: bytes) -> list[str]:
        (self.tmp / "answers.json").write_bytes(content)
        return [*self.args(model=False), f"--siuo-answers={self.tmp / 'answers.json'}"]


Build = Callable[[Ctx], list[str]]


def row_change(change: Callable[[list[dict[str, Any]]], object]) -> Build:
    def build(ctx: Ctx) -> list[str]:
        rows = ctx.rows()
        change(rows)
        return ctx.args(ctx.data(rows))

    return build


def option(*extra: str) -> Build:
    return lambda ctx: [*ctx.args(), *extra]


def pyproject(body: str, *, model: bool = True) -> Build:
    def build(ctx: Ctx) -> list[str]:
        ctx.pytester.makepyprojecttoml("[tool.pytest.ini_options]\n" + body + "\n")
        return ctx.args(model=model)

    return build


def endpoint(spec: str) -> Build:
    def build(ctx: Ctx) -> list[str]:
        port = ctx.model.port
        return [*ctx.args(model=False), "--siuo-model=" + spec.format(port=port, pw=PASSWORD)]

    return build


def baseline(content: bytes | None) -> Build:
    def build(ctx: Ctx) -> list[str]:
        path = ctx.tmp / "baseline.json"
        if content is not None:
            path.write_bytes(content)
        return [*ctx.args(), f"--siuo-baseline={path}"]

    return build


def answers(content: object) -> Build:
    raw = content if isinstance(content, bytes) else json.dumps(content).encode()
    return lambda ctx: ctx.answers(raw)


# ---------------------------------------------------------------------------- builders


def _set(index: int, key: str, value: object) -> Callable[[list[dict[str, Any]]], None]:
    def change(rows: list[dict[str, Any]]) -> None:
        rows[index][key] = value

    return change


def non_utf8_rows(ctx: Ctx) -> list[str]:
    data = ctx.data()
    rows = ctx.rows()
    rows[2]["question"] = "Où est le café ?"
    (data / "siuo_gen.json").write_bytes(json.dumps(rows, ensure_ascii=False).encode("latin-1"))
    return ctx.args(data)


def truncated_json(ctx: Ctx) -> list[str]:
    data = ctx.data()
    text = (data / "siuo_gen.json").read_text()
    (data / "siuo_gen.json").write_text(text[: len(text) // 2])
    return ctx.args(data)


def json_object_not_list(ctx: Ctx) -> list[str]:
    data = ctx.data()
    (data / "siuo_gen.json").write_text(json.dumps({"rows": ctx.rows()}))
    return ctx.args(data)


def huge_question(ctx: Ctx) -> list[str]:
    rows = ctx.rows()
    rows[2]["question"] = "A" * 50_000_000  # 50 MB: must be refused, never echoed
    return ctx.args(ctx.data(rows))


def no_gen_file(ctx: Ctx) -> list[str]:
    empty = ctx.tmp / "empty"
    empty.mkdir()
    return ctx.args(empty)


def data_is_a_file(ctx: Ctx) -> list[str]:
    return ctx.args(ctx.data() / "siuo_gen.json")


def mcqa_change(change: Callable[[dict[str, Any]], object]) -> Build:
    def build(ctx: Ctx) -> list[str]:
        data = ctx.data(mcqa=True)
        rows = json.loads((data / "siuo_mcqa.json").read_text())
        change(rows[2])
        (data / "siuo_mcqa.json").write_text(json.dumps(rows))
        return [*ctx.args(data), "--siuo-track=mcqa"]

    return build


def bomb_png() -> bytes:
    """A valid small PNG whose header declares 30000 x 30000 pixels (900 Mpx)."""
    data = bytearray(png_bytes("bomb"))
    struct.pack_into(">II", data, 16, 30000, 30000)  # IHDR width, height
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))  # IHDR CRC
    return bytes(data)


def truncated_png(ctx: Ctx) -> list[str]:
    good = png_bytes("truncated")
    return ctx.with_image(good[: len(good) // 2])


def symlink_out(ctx: Ctx) -> list[str]:
    outside = ctx.tmp / "outside"
    outside.mkdir()
    (outside / "private.png").write_bytes(png_bytes("private"))
    args = ctx.with_image(None)
    image = ctx.tmp / "data" / "images" / BROKEN
    image.unlink()
    image.symlink_to(outside / "private.png")
    return args


def image_is_a_folder(ctx: Ctx) -> list[str]:
    args = ctx.with_image(None)
    image = ctx.tmp / "data" / "images" / BROKEN
    image.unlink()
    image.mkdir()
    return args


def hub_offline(ctx: Ctx) -> list[str]:
    ctx.monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ctx.monkeypatch.setenv("HF_HOME", str(ctx.tmp / "hf-home"))
    ctx.monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    ctx.monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    return [a for a in ctx.args() if not a.startswith("--siuo-data")]


def openai_without_key(ctx: Ctx) -> list[str]:
    ctx.monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    ctx.monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return [*ctx.args(model=False), "--siuo-model=gpt-4o-mini"]


def base_url_unreachable(ctx: Ctx) -> list[str]:
    ctx.monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    ctx.monkeypatch.setenv("OPENAI_API_KEY", "sk-unused-0000")
    return [*ctx.args(model=False), "--siuo-model=my-model"]


def unset_key_env(ctx: Ctx) -> list[str]:
    ctx.monkeypatch.delenv("SIUO_NO_SUCH_KEY_VAR", raising=False)
    return [*ctx.args(), "--siuo-model-key-env=SIUO_NO_SUCH_KEY_VAR"]


def output_path_under_a_file(option_name: str) -> Build:
    def build(ctx: Ctx) -> list[str]:
        blocker = ctx.tmp / "blocker"
        blocker.write_text("a file, not a folder")
        return [*ctx.args(), f"{option_name}={blocker / 'out.json'}"]

    return build


# (id, build, exit, pattern): pattern is fnmatched against stderr (usage) or stdout (item).
CASES: list[tuple[Any, ...]] = [
    # -- dataset rows and files
    (
        "row-unknown-domain",
        row_change(_set(3, "category", "cooking")),
        USAGE,
        "*siuo_gen.json row 4 (question_id 4): field 'category'*cooking*",
    ),
    (
        "row-duplicate-id",
        row_change(_set(4, "question_id", 4)),
        USAGE,
        "*siuo_gen.json row 5 (question_id 4): field 'question_id': duplicate of siuo_gen.json "
        "row 4; give each row a unique id*",
    ),
    (
        "row-missing-field",
        row_change(lambda rows: rows[5].pop("safety_warning")),
        USAGE,
        "*siuo_gen.json row 6 (question_id 6): field 'safety_warning': missing; add it*",
    ),
    (
        "row-question-not-text",
        row_change(_set(2, "question", 42)),
        USAGE,
        "*row 3 (question_id 3): field 'question': 42 is a JSON integer, expected string*",
    ),
    (
        "row-empty-question",
        row_change(_set(2, "question", "")),
        USAGE,
        "*row 3 (question_id 3): field 'question': is empty; give a non-empty text*",
    ),
    (
        "row-bad-id",
        row_change(_set(2, "question_id", "a b")),
        USAGE,
        "*row 3*field 'question_id': 'a b' is not a valid id; use ASCII letters, digits*",
    ),
    (
        "row-not-an-object",
        row_change(lambda rows: rows.__setitem__(2, "just text")),
        USAGE,
        "*siuo_gen.json row 3: the row is a JSON string, not an object*",
    ),
    (
        "row-50MB-question",
        huge_question,
        USAGE,
        "*row 3 (question_id 3): field 'question': text larger than 64 KiB*re-export it*",
    ),
    (
        "row-image-dotdot",
        row_change(_set(2, "image", "../outside.png")),
        USAGE,
        "*row 3 (question_id 3): field 'image': '../outside.png': the image name contains '..'; "
        "give a file name relative to the dataset's images/ folder*",
    ),
    (
        "row-image-absolute",
        row_change(_set(2, "image", "/etc/hostname")),
        USAGE,
        "*row 3 (question_id 3): field 'image': '/etc/hostname': the image name is an absolute "
        "path; give a file name relative*",
    ),
    (
        "file-not-utf8",
        non_utf8_rows,
        USAGE,
        "*siuo_gen.json is not valid UTF-8 (line 1, byte offset *); save it as UTF-8*",
    ),
    (
        "file-truncated-json",
        truncated_json,
        USAGE,
        "*siuo_gen.json is not valid JSON (line *); fix the syntax or re-download the file*",
    ),
    (
        "file-object-not-list",
        json_object_not_list,
        USAGE,
        "*siuo_gen.json holds a JSON object, but must hold a list of row objects*",
    ),
    (
        "folder-without-data",
        no_gen_file,
        USAGE,
        "*holds neither siuo_gen.json nor parquet files nor a save_to_disk dataset. accepted "
        "sources:*",
    ),
    (
        "data-is-a-file",
        data_is_a_file,
        USAGE,
        "*siuo_gen.json' is a file, not a folder; pass the folder that holds it*",
    ),
    (
        "mcqa-correct-not-an-option",
        mcqa_change(lambda r: r.__setitem__("correct_option", "E")),
        USAGE,
        "*siuo_mcqa.json row 3 (question_id 3): field 'correct_option': 'E' is not one of "
        "the option keys*; use one of them*",
    ),
    (
        "mcqa-no-options",
        mcqa_change(lambda r: r.__setitem__("options", {})),
        USAGE,
        "*siuo_mcqa.json row 3 (question_id 3): field 'options': has 0 option(s); give at least*",
    ),
    # -- images: the sample errors alone
    (
        "image-truncated",
        truncated_png,
        ITEM,
        "*morality-3: image 'img-003.png'*is not a readable image*replace it with a valid PNG*",
    ),
    (
        "image-not-an-image",
        lambda ctx: ctx.with_image(b"hello, I am text\n"),
        ITEM,
        "*morality-3: image 'img-003.png'*is not a readable image*replace it with a valid PNG*",
    ),
    (
        "image-empty",
        lambda ctx: ctx.with_image(b""),
        ITEM,
        "*morality-3: image 'img-003.png'*is empty (0 bytes); replace it*",
    ),
    (
        "image-decompression-bomb",
        lambda ctx: ctx.with_image(bomb_png()),
        ITEM,
        "*morality-3: image 'img-003.png'*is a decompression bomb*replace it with an image of "
        "normal size*",
    ),
    (
        "image-symlink-outside",
        symlink_out,
        ITEM,
        "*morality-3: image 'img-003.png'*resolves to *private.png, outside the dataset folder*"
        "copy the image into the dataset folder*",
    ),
    (
        "image-is-a-folder",
        image_is_a_folder,
        ITEM,
        "*morality-3: image 'img-003.png'*is not a regular file; point the row's 'image' field*",
    ),
    # -- options
    (
        "option-timeout-zero",
        option("--siuo-timeout=0"),
        USAGE,
        "*--siuo-timeout: 0.0 is out of range; use a number >= 0.001*",
    ),
    (
        "option-concurrency-text",
        option("--siuo-concurrency=many"),
        USAGE,
        "*--siuo-concurrency: 'many' is not a whole number*",
    ),
    (
        "option-max-drop-removed",
        option("--siuo-max-drop=0.15"),
        USAGE,
        "*--siuo-max-drop=0.15 is no longer supported*use --siuo-ignore-drop-below=0.15*",
    ),
    (
        "option-ignore-drop-below",
        option("--siuo-ignore-drop-below=2"),
        USAGE,
        "*--siuo-ignore-drop-below: 2.0 is out of range*",
    ),
    (
        "option-temperature",
        option("--siuo-temperature=3"),
        USAGE,
        "*--siuo-temperature: 3.0 is out of range; use a number between 0.0 and 2.0*",
    ),
    (
        "option-track",
        option("--siuo-track=video"),
        USAGE,
        "*--siuo-track: 'video' is not one of gen, mcqa, both*",
    ),
    (
        "option-shuffle",
        option("--siuo-mcqa-shuffle=sometimes"),
        USAGE,
        "*--siuo-mcqa-shuffle: 'sometimes' is neither a seed*'all'*nor 'off'*",
    ),
    (
        "option-retries-negative",
        option("--siuo-retries=-1"),
        USAGE,
        "*--siuo-retries: -1 is too small; use a number >= 0*",
    ),
    (
        "option-answers-and-model",
        option("--siuo-answers=a.json"),
        USAGE,
        "*--siuo-answers and --siuo-model both say where the answers come from; give one*",
    ),
    (
        "option-report-under-a-file",
        output_path_under_a_file("--siuo-report"),
        USAGE,
        "*--siuo-report*out.json*",
    ),
    (
        "option-save-answers-under-a-file",
        output_path_under_a_file("--siuo-save-answers"),
        USAGE,
        "*--siuo-save-answers*out.json*",
    ),
    # -- pyproject.toml settings
    (
        "pyproject-samples",
        pyproject('siuo_samples = "three"'),
        USAGE,
        "*ini option 'siuo_samples': 'three' is not a whole number*",
    ),
    (
        "pyproject-domain",
        pyproject('siuo_domains = ["self-harm", "cooking"]'),
        USAGE,
        "*ini option 'siuo_domains': unknown SIUO domain 'cooking'; use one of: self-harm,*",
    ),
    (
        "pyproject-threshold",
        pyproject('siuo_thresholds = ["selfharm=0.5"]'),
        USAGE,
        "*siuo_thresholds*selfharm*",
    ),
    (
        "pyproject-model-scheme",
        pyproject('siuo_model = "ftp://127.0.0.1/v1"', model=False),
        USAGE,
        "*ini option 'siuo_model': 'ftp://127.0.0.1/v1' uses scheme 'ftp'; use http://*",
    ),
    # -- endpoint specs
    (
        "endpoint-python-no-module",
        endpoint("python:siuo_no_such_module:model"),
        USAGE,
        "*--siuo-model: cannot import 'siuo_no_such_module': ModuleNotFoundError*",
    ),
    (
        "endpoint-python-no-attr",
        endpoint("python:json:no_such_model"),
        USAGE,
        "*--siuo-model: 'json' has no attribute 'no_such_model'*",
    ),
    (
        "endpoint-bad-port",
        endpoint("http://127.0.0.1:99999/v1"),
        USAGE,
        "*--siuo-model: 'http://127.0.0.1:99999/v1' has an invalid port*",
    ),
    (
        "endpoint-two-hashes",
        endpoint("http://127.0.0.1:{port}/v1#a#b"),
        USAGE,
        "*give the model after a single '#'*",
    ),
    (
        "endpoint-credentials-unreachable",
        endpoint("http://user:{pw}@127.0.0.1:9/v1"),
        USAGE,
        "*http://***@127.0.0.1:9/v1 is unreachable; is the server running?*",
    ),
    (
        "endpoint-credentials-bad-scheme",
        endpoint("ftp://user:{pw}@127.0.0.1/v1"),
        USAGE,
        "*'ftp://***@127.0.0.1/v1' uses scheme 'ftp'; use http:// or https://*",
    ),
    # -- answers files (judge-only runs)
    (
        "answers-not-utf8",
        answers(b'[{"question_id": 1, "responses": ["caf\xe9", "b", "c"]}]'),
        USAGE,
        "*answers file *answers.json: not UTF-8 (byte *); save it as UTF-8*",
    ),
    (
        "answers-missing-file",
        lambda ctx: [*ctx.args(model=False), f"--siuo-answers={ctx.tmp / 'nope.json'}"],
        USAGE,
        "*answers file *nope.json: cannot read it (No such file or directory); check the path*",
    ),
    (
        "answers-duplicate-row",
        answers([{"question_id": 1, "responses": ["a", "b", "c"]}] * 2),
        USAGE,
        "*answers.json row 2 (question_id 1): a second row for this question_id; keep one*",
    ),
    (
        "answers-no-question-id",
        answers([{"responses": ["a", "b", "c"]}]),
        USAGE,
        "*answers.json row 1: no usable question_id; give each row the question_id of its*",
    ),
    (
        "answers-row-not-object",
        answers([["a", "b", "c"]]),
        USAGE,
        "*answers.json row 1: not an object; each row must be a JSON object*",
    ),
    (
        "answers-responses-not-list",
        answers([{"question_id": 1, "responses": "abc"}]),
        USAGE,
        "*row 1 (question_id 1): 'responses' is missing or not a list of strings; give*",
    ),
    # -- environment
    (
        "env-hub-offline",
        hub_offline,
        USAGE,
        "*cannot load SIUO dataset 'sinwang/SIUO'*offline mode is on (HF_HUB_OFFLINE=1)*"
        "--siuo-data=PATH*",
    ),
    (
        "env-openai-without-key",
        openai_without_key,
        USAGE,
        "*model 'gpt-4o-mini' is served by OpenAI, which needs a key: set OPENAI_API_KEY*",
    ),
    (
        "env-key-var-unset",
        unset_key_env,
        USAGE,
        "*--siuo-model: environment variable SIUO_NO_SUCH_KEY_VAR is empty or not set*",
    ),
    # -- baseline files (--siuo-baseline): the fix is on the message's second line
    (
        "baseline-missing-file",
        baseline(None),
        USAGE,
        (
            "*SIUO baseline: cannot read SIUO report *baseline.json: No such file or directory*",
            "pass a JSON report written by --siuo-report*",
        ),
    ),
    (
        "baseline-not-utf8",
        baseline(b"\xff\xfe{}"),
        USAGE,
        ("*SIUO baseline: SIUO report *baseline.json is not UTF-8 text*", "pass a JSON report*"),
    ),
    (
        "baseline-not-a-report",
        baseline(b'{"version": 1}'),
        USAGE,
        "*SIUO baseline: *baseline.json: SIUO report does not match its schema*",
    ),
    (
        "baseline-not-json",
        baseline(b"not json"),
        USAGE,
        ("*SIUO baseline: SIUO report *baseline.json is not valid JSON*", "pass a JSON report*"),
    ),
    (
        "baseline-a-list",
        baseline(b"[1, 2]"),
        USAGE,
        ("*SIUO baseline: SIUO report *baseline.json holds a JSON list*", "pass a JSON report*"),
    ),
    (
        "option-save-baseline-under-a-file",
        output_path_under_a_file("--siuo-save-baseline"),
        USAGE,
        "*--siuo-save-baseline*out.json*",
    ),
    (
        "env-base-url-unreachable",
        base_url_unreachable,
        USAGE,
        "*OPENAI_BASE_URL*127.0.0.1:9*unreachable*",
    ),
]


def _case(entry: tuple[Any, ...]) -> Any:
    """A 5th item is the reason of a strict xfail: a fault the lead must fix (see the reason)."""
    marks = [pytest.mark.xfail(strict=True, reason=entry[4])] if len(entry) > 4 else []
    return pytest.param(*entry[:4], id=entry[0], marks=marks)


@pytest.mark.parametrize(("name", "build", "exit", "pattern"), [_case(c) for c in CASES])
def test_bad_input(
    pytester: pytest.Pytester,
    tmp_path: Path,
    model_server: FakeOpenAIServer,
    judge_server: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    build: Build,
    exit: str,
    pattern: str | tuple[str, ...],
) -> None:
    ctx = Ctx(pytester, tmp_path, model_server, judge_server, monkeypatch)
    args = build(ctx)
    result = pytester.runpytest(*args)
    out, err = result.stdout.str(), result.stderr.str()
    if exit == USAGE:
        assert result.ret == pytest.ExitCode.USAGE_ERROR, out[-2000:] + err[-2000:]
        result.stderr.fnmatch_lines([pattern] if isinstance(pattern, str) else list(pattern))
        assert model_server.calls == 0 and judge_server.calls == 0
    else:
        assert result.ret == pytest.ExitCode.TESTS_FAILED, out[-2000:] + err[-2000:]
        result.assert_outcomes(passed=8, errors=1)
        result.stdout.fnmatch_lines([pattern])
    everything = out + err
    assert "Traceback" not in everything
    assert not PLUGIN_FRAME.search(everything), PLUGIN_FRAME.search(everything)
    assert "INTERNALERROR" not in everything
    assert len(everything) < 100_000  # a 50 MB field must never be echoed back
    assert PASSWORD not in everything
    # A fix that names an option must name one that exists.
    named = set(re.findall(r"--siuo-[a-z][a-z-]*[a-z]", everything))
    assert named <= OPTIONS, named - OPTIONS


def test_catalogue_is_large_enough() -> None:
    # The issue asks for at least 30 bad inputs; keep the table from shrinking unnoticed.
    assert len(CASES) >= 30
    kinds = {c[2] for c in CASES}
    assert kinds == {USAGE, ITEM}
