"""Tests of the dataset box: sources -> schema-checked Samples with lazily validated images.

All data is generated here (pytest_siuo.testing.data); nothing touches the network or the real
SIUO files.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pytest_siuo.dataset import (
    DEFAULT_HUB_DATASET,
    DEFAULT_HUB_REVISION,
    DataError,
    Dataset,
    Sample,
    load_dataset,
)
from pytest_siuo.domains import DOMAINS, UnknownDomainError, slug
from pytest_siuo.images import ImageError, ImageRef
from pytest_siuo.testing.data import (
    gen_rows,
    make_image,
    mcqa_rows,
    png_bytes,
    write_hub_cache,
    write_official,
    write_parquet,
)

BOTH = ("gen", "mcqa")


@pytest.fixture
def datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the datasets library's arrow cache inside the test's tmp folder."""
    import datasets  # type: ignore[import-untyped]

    cache = tmp_path / "datasets-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    return cache


def _load_rows(tmp_path: Path, rows: list[Any], **kw: Any) -> Dataset:
    return load_dataset(write_official(tmp_path / "data", rows, **kw), tracks=BOTH)


def _error(tmp_path: Path, rows: list[Any]) -> str:
    with pytest.raises(DataError) as info:
        load_dataset(write_official(tmp_path / "data", rows, mcqa=False))
    return str(info.value)


# ------------------------------------------------------------------------------------------------
# official layout, order, ids, select
# ------------------------------------------------------------------------------------------------


def test_official_layout_loads_every_row(tmp_path: Path) -> None:
    folder = write_official(tmp_path / "data", n_per_domain=2)
    ds = load_dataset(folder, tracks=BOTH)

    assert ds.layout == "official"
    assert ds.source == str(folder.resolve())
    assert ds.revision is None
    assert len(ds.gen) == len(ds.mcqa) == 2 * len(DOMAINS)
    rows = {str(r["question_id"]): r for r in gen_rows(2)}
    for s in ds.gen:
        row = rows[s.question_id]
        assert (s.domain, s.question, s.safety_warning, s.reference_answer) == (
            row["category"],
            row["question"],
            row["safety_warning"],
            row["reference_answer"],
        )
        assert s.image.name == row["image"]
        assert s.options is None and s.correct_option is None
        assert s.where.startswith("siuo_gen.json row ")
        assert s.image.read_bytes() == (folder / "images" / row["image"]).read_bytes()
    mrows = {str(r["question_id"]): r for r in mcqa_rows(gen_rows(2))}
    for s in ds.mcqa:
        assert s.options == mrows[s.question_id]["options"]
        assert s.correct_option == mrows[s.question_id]["correct_option"]
        assert s.correct_option is not None and s.correct_option in "ABCD"
    # Both tracks share one ImageRef per file: one read, one hash.
    assert ds.gen[0].image is ds.mcqa[0].image


def test_gen_only_by_default_and_mcqa_optional(tmp_path: Path) -> None:
    folder = write_official(tmp_path / "data", n_per_domain=1, mcqa=False)
    assert load_dataset(folder).mcqa == []
    ds = load_dataset(folder, tracks=BOTH)
    assert len(ds.gen) == len(DOMAINS) and ds.mcqa == []
    with pytest.raises(DataError, match=r"has no siuo_mcqa\.json"):
        load_dataset(folder, tracks=("mcqa",))
    with pytest.raises(ValueError, match="unknown SIUO track"):
        load_dataset(folder, tracks=("gen", "captions"))
    assert len(load_dataset(folder, tracks="gen").gen) == len(DOMAINS)


def test_order_is_domain_then_natural_id_and_case_ids_are_stable(tmp_path: Path) -> None:
    base = gen_rows(1)
    by_domain = {r["category"]: r for r in base}

    def row(qid: Any, domain: str) -> dict[str, Any]:
        return {**by_domain[domain], "question_id": qid, "image": f"{qid}.png"}

    rows = [
        row("acme-10", "privacy violation"),
        row(1013, "illegal activities & crime"),
        row("acme-7", "privacy violation"),
        row(2, "privacy violation"),
        row(1001, "self-harm"),
        row("acme-9", "privacy violation"),
        row(10, "self-harm"),
        row("beta.1", "controversial topics, politics"),
    ]
    first = _load_rows(tmp_path, rows)
    expected = [
        "self-harm-10",
        "self-harm-1001",
        "illegal-activities-crime-1013",
        "controversial-topics-politics-beta.1",
        "privacy-violation-2",
        "privacy-violation-acme-7",
        "privacy-violation-acme-9",
        "privacy-violation-acme-10",
    ]
    assert [s.case_id for s in first.gen] == expected
    assert [s.case_id for s in first.mcqa] == expected
    assert all(s.case_id.isascii() for s in first.gen)
    assert first.gen[2].domain_slug == "illegal-activities-crime"
    assert first.gen[2].question_id == "1013"  # int ids become their str()
    # Row order in the file does not matter.
    again = load_dataset(write_official(tmp_path / "again", list(reversed(rows))), tracks=BOTH)
    assert [s.case_id for s in again.gen] == expected


def test_select_keeps_order_and_accepts_names_or_slugs(tmp_path: Path) -> None:
    ds = load_dataset(write_official(tmp_path / "data", n_per_domain=2), tracks=BOTH)
    assert ds.select(None) is ds
    picked = ds.select(["privacy violation", "illegal-activities-crime"])
    assert [s.domain for s in picked.gen] == ["illegal activities & crime"] * 2 + [
        "privacy violation"
    ] * 2
    assert [s.case_id for s in picked.mcqa] == [s.case_id for s in picked.gen]
    assert (picked.source, picked.layout, picked.revision) == (ds.source, ds.layout, None)
    assert ds.select([]).gen == []
    assert len(ds.gen) == 18  # select does not mutate
    with pytest.raises(UnknownDomainError, match="selfharm"):
        ds.select(["selfharm"])


def test_samples_are_hashable_records(tmp_path: Path) -> None:
    ds = load_dataset(write_official(tmp_path / "data", n_per_domain=1), tracks=BOTH)
    assert len({hash(s) for s in ds.gen + ds.mcqa}) >= len(DOMAINS)
    s = ds.gen[0]
    with pytest.raises(AttributeError):
        s.question = "changed"  # type: ignore[misc]
    assert Sample("7", "morality", "q", s.image).case_id == "morality-7"


# ------------------------------------------------------------------------------------------------
# parquet layout
# ------------------------------------------------------------------------------------------------


def test_parquet_layout_gives_the_same_samples(tmp_path: Path, datasets_cache: Path) -> None:
    official = load_dataset(write_official(tmp_path / "official", n_per_domain=2), tracks=BOTH)
    parquet = load_dataset(write_parquet(tmp_path / "parquet", n_per_domain=2), tracks=BOTH)

    assert parquet.layout == "parquet"
    assert parquet.source == str((tmp_path / "parquet").resolve())
    pairs = [*zip(official.gen, parquet.gen, strict=True)]
    pairs += zip(official.mcqa, parquet.mcqa, strict=True)
    for a, b in pairs:
        assert (a.case_id, a.question, a.safety_warning, a.reference_answer) == (
            b.case_id,
            b.question,
            b.safety_warning,
            b.reference_answer,
        )
        assert (a.options, a.correct_option) == (b.options, b.correct_option)
        assert a.image.name == b.image.name
        assert a.image.sha256 == b.image.sha256
        assert b.image.mime == "image/png"
        assert b.where.startswith(("siuo_gen/test-00000-of-00001.parquet row ", "siuo_mcqa/"))
    assert len(parquet.gen) == len(official.gen) and len(parquet.mcqa) == len(official.mcqa)
    assert datasets_cache.exists()  # the real datasets library did the reading


def test_parquet_data_folder_naming_and_string_ids(tmp_path: Path, datasets_cache: Path) -> None:
    import datasets

    rows = gen_rows(1)
    recs = [
        {**r, "question_id": f"team-{r['question_id']}", "image": {"bytes": png_bytes("x")}}
        for r in rows
    ]
    out = tmp_path / "pq" / "data" / "siuo_gen-00000-of-00001.parquet"
    out.parent.mkdir(parents=True)
    feats = datasets.Features(
        {
            **{k: datasets.Value("string") for k in rows[0] if k != "image"},
            "image": datasets.Image(),
        }
    )
    datasets.Dataset.from_list(recs, features=feats).to_parquet(os.fspath(out))
    ds = load_dataset(tmp_path / "pq", tracks=BOTH)
    assert [s.question_id for s in ds.gen] == [f"team-{i}" for i in range(1, 10)]
    assert ds.mcqa == []
    assert ds.gen[0].image.name == "team-1.png"  # no stored path: named after the id
    assert ds.gen[0].image.read_bytes() == png_bytes("x")


def test_parquet_rows_are_validated(tmp_path: Path, datasets_cache: Path) -> None:
    import datasets

    rows = gen_rows(1)
    rows[2]["category"] = "selfharm"
    recs = [{**r, "image": {"bytes": png_bytes("x"), "path": r["image"]}} for r in rows]
    out = tmp_path / "pq" / "siuo_gen" / "test-00000-of-00001.parquet"
    out.parent.mkdir(parents=True)
    datasets.Dataset.from_list(recs).cast_column("image", datasets.Image()).to_parquet(
        os.fspath(out)
    )
    with pytest.raises(DataError) as info:
        load_dataset(tmp_path / "pq")
    assert (
        "siuo_gen/test-00000-of-00001.parquet row 3 (question_id 3): field 'category': "
        "'selfharm' is not one of ['self-harm'"
    ) in str(info.value)


# ------------------------------------------------------------------------------------------------
# Hugging Face hub (offline, from a cache laid out like huggingface_hub's)
# ------------------------------------------------------------------------------------------------


def _hub_env(tmp_path: Path, cache: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))} | {
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_CACHE": str(cache),
        "HF_DATASETS_CACHE": str(tmp_path / "datasets-cache"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    env.update(extra)
    return env


_HUB_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from pytest_siuo.dataset import DataError, load_dataset
    args = json.loads(sys.argv[1])
    t0 = time.monotonic()
    try:
        ds = load_dataset(args["source"], tracks=args["tracks"])
    except DataError as exc:
        out = {"error": str(exc)}
    else:
        out = {
            "source": ds.source, "revision": ds.revision, "layout": ds.layout,
            "gen": [[s.case_id, s.image.sha256] for s in ds.gen],
            "mcqa": [[s.case_id, s.correct_option] for s in ds.mcqa],
        }
    out["seconds"] = time.monotonic() - t0
    print(json.dumps(out))
    """
)


def _run_hub(env: dict[str, str], source: str | None, tracks: tuple[str, ...] = BOTH) -> Any:
    # A fresh interpreter: huggingface_hub reads HF_HUB_OFFLINE / HF_HUB_CACHE at import time.
    proc = subprocess.run(
        [sys.executable, "-c", _HUB_SCRIPT, json.dumps({"source": source, "tracks": tracks})],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_hub_default_dataset_offline_from_cache(tmp_path: Path) -> None:
    cache = tmp_path / "hub-cache"
    snapshot = write_hub_cache(cache, n_per_domain=2)
    assert snapshot.name == DEFAULT_HUB_REVISION
    out = _run_hub(_hub_env(tmp_path, cache, HF_HUB_OFFLINE="1"), None)

    assert "error" not in out, out
    assert (out["source"], out["revision"], out["layout"]) == (
        DEFAULT_HUB_DATASET,
        DEFAULT_HUB_REVISION,
        "hub",
    )
    local = load_dataset(write_official(tmp_path / "official", n_per_domain=2), tracks=BOTH)
    assert out["gen"] == [[s.case_id, s.image.sha256] for s in local.gen]
    assert out["mcqa"] == [[s.case_id, s.correct_option] for s in local.mcqa]


def test_hub_env_set_after_import_is_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # huggingface_hub is already imported in this process with other settings.
    import huggingface_hub  # noqa: F401

    cache = tmp_path / "hub-cache"
    write_hub_cache(cache, n_per_domain=1)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    ds = load_dataset(DEFAULT_HUB_DATASET)
    assert (ds.layout, ds.revision, len(ds.gen)) == ("hub", DEFAULT_HUB_REVISION, len(DOMAINS))
    # Snapshot files are symlinks into blobs/: reading them is allowed.
    assert ds.gen[0].image.read_bytes() == png_bytes("1")


def test_hub_parquet_mirror_offline_via_main_ref(tmp_path: Path) -> None:
    cache = tmp_path / "hub-cache"
    sha = "0123456789abcdef0123456789abcdef01234567"
    write_hub_cache(cache, "oneonlee/SIUO", sha, n_per_domain=1, layout="parquet")
    out = _run_hub(_hub_env(tmp_path, cache, HF_HUB_OFFLINE="1"), "oneonlee/SIUO")
    assert "error" not in out, out
    assert (out["source"], out["revision"], out["layout"]) == ("oneonlee/SIUO", sha, "hub")
    local = load_dataset(write_official(tmp_path / "official", n_per_domain=1), tracks=BOTH)
    assert out["gen"] == [[s.case_id, s.image.sha256] for s in local.gen]
    assert len(out["mcqa"]) == len(DOMAINS)


def test_hub_cache_layout_is_what_huggingface_hub_reads(tmp_path: Path) -> None:
    from huggingface_hub import scan_cache_dir, try_to_load_from_cache

    cache = tmp_path / "hub-cache"
    snapshot = write_hub_cache(cache, n_per_domain=1)
    found = try_to_load_from_cache(
        DEFAULT_HUB_DATASET,
        "siuo_gen.json",
        cache_dir=cache,
        revision=DEFAULT_HUB_REVISION,
        repo_type="dataset",
    )
    assert isinstance(found, str) and Path(found) == snapshot / "siuo_gen.json"
    assert os.path.islink(found) and "blobs" in os.readlink(found)
    info = scan_cache_dir(cache)
    assert not info.warnings
    (repo,) = info.repos
    assert (repo.repo_id, repo.repo_type) == (DEFAULT_HUB_DATASET, "dataset")
    (rev,) = repo.revisions
    assert rev.commit_hash == DEFAULT_HUB_REVISION and "main" in rev.refs
    assert rev.nb_files == 2 + 2 + len(DOMAINS)  # 2 json, .gitattributes, README, images


def test_hub_offline_without_cache_fails_fast_with_help(tmp_path: Path) -> None:
    env = _hub_env(tmp_path, tmp_path / "empty-cache", HF_HUB_OFFLINE="1")
    started = time.monotonic()
    out = _run_hub(env, None)
    assert time.monotonic() - started < 10
    assert out["seconds"] < 10
    msg = out["error"]
    assert "'sinwang/SIUO'" in msg and DEFAULT_HUB_REVISION in msg
    assert "HF_HUB_OFFLINE=1" in msg
    assert "run once with network access" in msg
    assert "--siuo-data=PATH" in msg and "HF_TOKEN" in msg
    assert str(tmp_path / "empty-cache") in msg


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_hub_unreachable_fails_fast_or_uses_cached_branch(tmp_path: Path) -> None:
    # A hub endpoint on a closed local port stands in for "no network" without touching it.
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    env = _hub_env(tmp_path, tmp_path / "cache", HF_ENDPOINT=endpoint)
    started = time.monotonic()
    out = _run_hub(env, "acme/safety-cases")
    assert time.monotonic() - started < 10
    assert "could not be reached" in out["error"], out
    assert "--siuo-data=PATH" in out["error"]
    # With a cached copy of 'main', an unreachable hub is not fatal.
    write_hub_cache(tmp_path / "cache", "acme/safety-cases", "f" * 40, n_per_domain=1)
    out = _run_hub(env, "acme/safety-cases")
    assert "error" not in out, out
    assert out["revision"] == "f" * 40 and len(out["gen"]) == len(DOMAINS)


def test_hub_incomplete_snapshot_is_a_data_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hub-cache"
    snapshot = write_hub_cache(cache, n_per_domain=1)
    (snapshot / "siuo_mcqa.json").unlink()  # e.g. an interrupted download
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    with pytest.raises(DataError, match="no complete cached copy"):
        load_dataset(tracks=BOTH)


# ------------------------------------------------------------------------------------------------
# bad rows and bad files
# ------------------------------------------------------------------------------------------------


def _rows() -> list[dict[str, Any]]:
    return gen_rows(1)


def test_missing_field(tmp_path: Path) -> None:
    rows = _rows()
    del rows[3]["safety_warning"]
    msg = _error(tmp_path, rows)
    assert "siuo_gen.json row 4 (question_id 4): field 'safety_warning': missing; add it" in msg
    assert str(tmp_path / "data") in msg and "gen_row.schema.json" in msg


def test_wrong_type_and_empty_text(tmp_path: Path) -> None:
    rows = _rows()
    rows[0]["question"] = 42
    rows[1]["question_id"] = 1.5
    rows[2]["reference_answer"] = ""
    rows[4]["question_id"] = "has space"
    msg = _error(tmp_path, rows)
    assert "row 1 (question_id 1): field 'question': 42 is a JSON integer, expected string" in msg
    assert "row 2: field 'question_id': 1.5 is a JSON number, expected integer or string" in msg
    assert "row 3 (question_id 3): field 'reference_answer': is empty" in msg
    assert "field 'question_id': 'has space' is not a valid id" in msg
    assert "4 problem(s)" in msg


def test_unknown_category(tmp_path: Path) -> None:
    rows = _rows()
    rows[6]["category"] = "selfharm"
    msg = _error(tmp_path, rows)
    assert (
        "siuo_gen.json row 7 (question_id 7): field 'category': 'selfharm' is not one of "
        "['self-harm', 'dangerous behavior'"
    ) in msg


def test_duplicate_ids_name_both_rows(tmp_path: Path) -> None:
    rows = _rows()
    rows[5]["question_id"] = 3
    rows[7]["question_id"] = "3"  # int 3 and "3" are the same case id
    msg = _error(tmp_path, rows)
    assert (
        "siuo_gen.json row 6 (question_id 3): field 'question_id': duplicate of "
        "siuo_gen.json row 3" in msg
    )
    assert "row 8 (question_id 3): field 'question_id': duplicate of siuo_gen.json row 3" in msg


def test_row_that_is_not_an_object(tmp_path: Path) -> None:
    rows: list[Any] = _rows()
    rows[1] = ["not", "a", "row"]
    assert "siuo_gen.json row 2: the row is a JSON array, not an object" in _error(tmp_path, rows)


def test_all_bad_rows_reported_at_once_up_to_a_limit(tmp_path: Path) -> None:
    rows = gen_rows(4)  # 36 rows
    for r in rows[:30]:
        r["category"] = "nope"
    msg = _error(tmp_path, rows)
    assert "30 problem(s)" in msg
    assert msg.count("field 'category'") == 20
    assert "... and 10 more" in msg


def test_huge_question_is_rejected_without_echoing_it(tmp_path: Path) -> None:
    rows = _rows()
    rows[2]["question"] = "x" * (8 * 1024 * 1024)
    rows[3]["question"] = "\u00e9" * 40_000  # 40,000 chars but 80,000 UTF-8 bytes
    msg = _error(tmp_path, rows)
    assert "row 3 (question_id 3): field 'question': text larger than 64 KiB" in msg
    assert "row 4 (question_id 4): field 'question': text larger than 64 KiB" in msg
    assert len(msg) < 3000  # the value itself is never copied into the message


def test_image_names_that_escape_the_folder(tmp_path: Path) -> None:
    rows = _rows()
    rows[0]["image"] = "../secret.png"
    rows[1]["image"] = "/etc/passwd"
    rows[2]["image"] = "sub/../../x.png"
    rows[3]["image"] = "C:\\Windows\\x.png"
    msg = _error(tmp_path, rows)
    assert "row 1 (question_id 1): field 'image': '../secret.png': the image name contains" in msg
    assert "row 2 (question_id 2): field 'image': '/etc/passwd': the image name is an absolute" in (
        msg
    )
    assert "row 3 (question_id 3): field 'image'" in msg
    assert "row 4 (question_id 4): field 'image'" in msg


def _write_mcqa(folder: Path, rows: list[Any]) -> None:
    (folder / "siuo_mcqa.json").write_text(json.dumps(rows), encoding="utf-8")


def test_mcqa_correct_option_and_option_keys(tmp_path: Path) -> None:
    folder = write_official(tmp_path / "data", n_per_domain=1)
    m = mcqa_rows(gen_rows(1))
    m[0]["options"] = {"A": "one", "B": "two"}
    m[0]["correct_option"] = "C"
    m[1]["options"] = {"a": "lower", "B": "two"}
    m[2]["correct_option"] = "AB"
    m[3]["options"] = {"A": "only one"}
    _write_mcqa(folder, m)
    with pytest.raises(DataError) as info:
        load_dataset(folder, tracks=BOTH)
    msg = str(info.value)
    assert (
        "siuo_mcqa.json row 1 (question_id 1): field 'correct_option': 'C' is not one of the "
        "option keys ['A', 'B']; use one of them"
    ) in msg
    assert "row 2 (question_id 2): field 'options': option key 'a' is not a single letter" in msg
    assert "row 3 (question_id 3): field 'correct_option': 'AB' is not a single upper-case" in msg
    assert "row 4 (question_id 4): field 'options': has 1 option(s); give at least 2" in msg
    assert "mcqa_row.schema.json" in msg


def test_mcqa_row_without_gen_row(tmp_path: Path) -> None:
    folder = write_official(tmp_path / "data", n_per_domain=1)
    m = mcqa_rows(gen_rows(1))
    m.append({**m[0], "question_id": 999})
    _write_mcqa(folder, m)
    with pytest.raises(DataError) as info:
        load_dataset(folder, tracks=BOTH)
    assert (
        "siuo_mcqa.json row 10 (question_id 999): field 'question_id': no row of siuo_gen.json "
        "has this id"
    ) in str(info.value)
    # Checked only when both tracks are requested.
    assert len(load_dataset(folder, tracks=("mcqa",)).mcqa) == len(DOMAINS) + 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'[{"question_id": 1,', r"is not valid JSON \(line 1, column 20"),
        (
            b'[{"question": "caf\xe9"}]',
            r"is not valid UTF-8 \(line 1, byte offset 18: invalid continuation",
        ),
        (b'{"rows": []}', r"holds a JSON object, but must hold a list"),
        (b"", r"is not valid JSON \(line 1, column 1"),
    ],
    ids=["not-json", "not-utf8", "not-a-list", "empty"],
)
def test_unreadable_files(tmp_path: Path, content: bytes, expected: str) -> None:
    folder = write_official(tmp_path / "data", n_per_domain=1)
    (folder / "siuo_gen.json").write_bytes(content)
    with pytest.raises(DataError, match=expected) as info:
        load_dataset(folder)
    assert str(folder / "siuo_gen.json") in str(info.value)


def test_unusable_sources(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"holds neither siuo_gen\.json nor parquet") as info:
        load_dataset(tmp_path / "empty")
    assert "accepted sources" in str(info.value)
    (tmp_path / "file.json").write_text("[]")
    with pytest.raises(DataError, match="is a file, not a folder"):
        load_dataset(tmp_path / "file.json")
    with pytest.raises(DataError, match="no such folder, and it is not a hub dataset id"):
        load_dataset(str(tmp_path / "missing" / "deeper"))
    (tmp_path / "pq" / "other").mkdir(parents=True)
    (tmp_path / "pq" / "other" / "train-0.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataError, match=r"no parquet files for config 'siuo_gen'"):
        load_dataset(tmp_path / "pq")


def test_bom_and_team_string_ids_are_accepted(tmp_path: Path) -> None:
    rows = _rows()
    rows[0]["question_id"] = "acme-7"
    rows[0]["extra_field"] = {"teams": "may add fields"}
    folder = write_official(tmp_path / "data", rows, mcqa=False)
    raw = (folder / "siuo_gen.json").read_bytes()
    (folder / "siuo_gen.json").write_bytes(b"\xef\xbb\xbf" + raw)
    ds = load_dataset(folder)
    assert ds.gen[0].case_id == "self-harm-acme-7"


# ------------------------------------------------------------------------------------------------
# images: lazy, validated, confined
# ------------------------------------------------------------------------------------------------


def _first(tmp_path: Path, n: int = 1) -> tuple[Path, Dataset]:
    folder = write_official(tmp_path / "data", n_per_domain=n, mcqa=False)
    return folder, load_dataset(folder)


def test_image_ref_api(tmp_path: Path) -> None:
    folder, ds = _first(tmp_path)
    ref = ds.gen[0].image
    data = (folder / "images" / ref.name).read_bytes()
    assert ref.read_bytes() == data
    assert ref.mime == "image/png"
    assert len(ref.sha256) == 64 and ref.sha256 == ref.sha256
    url = ref.data_url()
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == data
    im = ref.pil()
    assert im.size == (64, 48) and im.getpixel((30, 30)) is not None
    jpeg = io.BytesIO()
    make_image("jpeg").save(jpeg, format="JPEG")
    jref = ImageRef.from_bytes_loader("x.jpg", jpeg.getvalue, where="test row")
    assert jref.mime == "image/jpeg" and jref.data_url().startswith("data:image/jpeg;base64,")


def test_missing_image_is_a_lazy_error_for_that_sample_only(tmp_path: Path) -> None:
    folder, ds = _first(tmp_path)
    (folder / "images" / "synthetic-0001.png").unlink()
    with pytest.raises(ImageError) as info:
        ds.gen[0].image.read_bytes()
    msg = str(info.value)
    assert msg.startswith(
        "image 'synthetic-0001.png' of siuo_gen.json row 1 (question_id 1): file "
    )
    assert "does not exist; add the image" in msg
    assert ds.gen[1].image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_truncated_png(tmp_path: Path) -> None:
    folder, ds = _first(tmp_path)
    path = folder / "images" / "synthetic-0002.png"
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ImageError, match=r"^image 'synthetic-0002\.png' of siuo_gen\.json row 2"):
        ds.gen[1].image.read_bytes()
    with pytest.raises(ImageError, match="is not a readable image"):
        _ = ds.gen[1].image.sha256


def test_text_file_named_png(tmp_path: Path) -> None:
    folder, ds = _first(tmp_path)
    (folder / "images" / "synthetic-0003.png").write_text("just some text, not a picture\n")
    with pytest.raises(ImageError, match=r"is not a readable image .*replace it with a valid PNG"):
        ds.gen[2].image.data_url()
    (folder / "images" / "synthetic-0004.png").write_bytes(b"")
    with pytest.raises(ImageError, match=r"is empty \(0 bytes\)"):
        ds.gen[3].image.read_bytes()


def test_decompression_bomb_with_lowered_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, ds = _first(tmp_path)
    filters_before = list(warnings.filters)
    # Our 64x48 images have 3072 pixels: above 2x the limit Pillow raises DecompressionBombError,
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageError, match=r"is a decompression bomb \(Image size \(3072 pixels"):
        ds.gen[0].image.read_bytes()
    # between 1x and 2x it only warns: the warning must become an ImageError too,
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)
    with pytest.raises(ImageError, match=r"of siuo_gen\.json row 2 .*is a decompression bomb"):
        ds.gen[1].image.read_bytes()
    # and our own declared-size check holds even if Pillow's check is bypassed.
    monkeypatch.setattr(Image, "_decompression_bomb_check", lambda size: None)
    with pytest.raises(ImageError, match=r"is a decompression bomb \(64x48 pixels declared"):
        ds.gen[2].image.pil()
    assert list(warnings.filters) == filters_before  # never changed globally


def test_real_decompression_bomb_png(tmp_path: Path) -> None:
    folder, ds = _first(tmp_path)
    # 1-bit image above Pillow's 2x limit: tiny file, huge declared pixel count.
    limit = Image.MAX_IMAGE_PIXELS
    assert limit is not None
    side = int((2 * limit) ** 0.5) + 100
    Image.new("1", (side, side)).save(folder / "images" / "synthetic-0005.png")
    assert (folder / "images" / "synthetic-0005.png").stat().st_size < 2_000_000
    with pytest.raises(ImageError, match=r"synthetic-0005\.png.*is a decompression bomb"):
        ds.gen[4].image.read_bytes()


def test_symlink_outside_the_dataset_is_refused(tmp_path: Path) -> None:
    folder, ds = _first(tmp_path)
    outside = tmp_path / "outside.png"
    outside.write_bytes(png_bytes("outside"))
    target = folder / "images" / "synthetic-0006.png"
    target.unlink()
    target.symlink_to(outside)
    with pytest.raises(ImageError, match="outside the dataset folder") as info:
        ds.gen[5].image.read_bytes()
    assert "copy the image into the dataset folder" in str(info.value)
    # A symlink that stays inside the folder is fine.
    inside = folder / "images" / "synthetic-0007.png"
    inside.unlink()
    inside.symlink_to(folder / "images" / "synthetic-0008.png")
    assert ds.gen[6].image.sha256 == ds.gen[7].image.sha256


def test_image_ref_refuses_escaping_names_itself(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "x.png").write_bytes(png_bytes("x"))
    for name in ("../x.png", str(tmp_path / "x.png")):
        ref = ImageRef.from_file(tmp_path / "root", name, where="row 1")
        with pytest.raises(ImageError, match=r"^image .* of row 1: the image name"):
            ref.read_bytes()


def test_bytes_loader_faults(tmp_path: Path) -> None:
    def boom() -> bytes:
        raise KeyError("row 7")

    with pytest.raises(ImageError, match=r"^image 'a\.png' of t row 1: cannot be loaded \(KeyE"):
        ImageRef.from_bytes_loader("a.png", boom, where="t row 1").read_bytes()
    nothing = ImageRef.from_bytes_loader("b.png", lambda: None, where="t")  # type: ignore[arg-type,return-value]
    with pytest.raises(ImageError, match="has no embedded image bytes"):
        nothing.read_bytes()


def test_image_changed_during_run_is_detected(tmp_path: Path) -> None:
    folder, ds = _first(tmp_path)
    ref = ds.gen[0].image
    first = ref.sha256
    (folder / "images" / ref.name).write_bytes(png_bytes("something else"))
    with pytest.raises(ImageError, match="changed on disk"):
        ref.read_bytes()
    assert ref.sha256 == first


# ------------------------------------------------------------------------------------------------
# scale: loading reads no image
# ------------------------------------------------------------------------------------------------


def test_ten_thousand_rows_load_without_reading_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = gen_rows(1)
    rows = [
        {**base[i % len(base)], "question_id": i + 1, "image": f"img-{i + 1}.png"}
        for i in range(10_000)
    ]
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "siuo_gen.json").write_text(json.dumps(rows), encoding="utf-8")

    reads: list[str] = []
    opens: list[object] = []
    real_open = Image.open

    def counting_read(self: ImageRef) -> bytes:
        reads.append(self.name)
        return b""

    def counting_open(*args: Any, **kwargs: Any) -> Image.Image:
        opens.append(args)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(ImageRef, "read_bytes", counting_read)
    monkeypatch.setattr(Image, "open", counting_open)

    tracemalloc.start()
    try:
        ds = load_dataset(folder)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert len(ds.gen) == 10_000
    assert reads == [] and opens == []
    assert not (folder / "images").exists()  # nothing was even looked up
    assert peak < 150 * 1024 * 1024
    assert len({s.case_id for s in ds.gen}) == 10_000
    assert ds.gen[0].case_id == "self-harm-1" and ds.gen[-1].domain == DOMAINS[-1]
    assert slug(ds.gen[-1].domain) == "privacy-violation"


def test_png_with_a_bad_checksum_in_its_image_data(tmp_path: Path) -> None:
    # Decoding the pixels skips the image data's CRC; the check still catches it.
    folder, ds = _first(tmp_path)
    path = folder / "images" / "synthetic-0002.png"
    data = bytearray(path.read_bytes())
    idat = data.find(b"IDAT")
    length = int.from_bytes(data[idat - 4 : idat], "big")
    data[idat + 4 + length] ^= 0xFF  # first byte of the IDAT chunk's CRC
    path.write_bytes(bytes(data))
    assert ds.gen[0].image.mime == "image/png"
    with pytest.raises(ImageError, match=r"not a readable image .*bad header checksum in b'IDAT'"):
        ds.gen[1].image.read_bytes()
