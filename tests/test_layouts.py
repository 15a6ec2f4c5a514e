"""Each dataset layout the ``datasets`` library writes, written by it here, read as SIUO samples.

Every layout holds the same generated rows and Pillow images as the official-layout folder, so
each test compares the loaded samples (ids, texts, options and image hashes) with those of the
official layout. Nothing here touches the network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_siuo.dataset import DEFAULT_HUB_DATASET, DEFAULT_HUB_REVISION, DataError, load_dataset
from pytest_siuo.testing.data import gen_rows, mcqa_rows, png_bytes, write_hub_cache, write_official

BOTH = ("gen", "mcqa")
GEN = gen_rows(1)
MCQA = mcqa_rows(GEN)


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the datasets library's arrow cache inside the test's tmp folder."""
    import datasets  # type: ignore[import-untyped]

    cache = tmp_path / "datasets-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    return cache


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Any, ...]]:
    folder = write_official(tmp_path_factory.mktemp("official"), GEN, mcqa=True)
    return summary(load_dataset(folder, tracks=BOTH))


def summary(ds: Any) -> list[tuple[Any, ...]]:
    return [
        (
            s.case_id,
            s.question,
            s.safety_warning,
            s.reference_answer,
            s.options,
            s.correct_option,
            s.image.sha256,
        )
        for s in [*ds.gen, *ds.mcqa]
    ]


def table(rows: list[dict[str, Any]], *, image: str = "bytes", images: Path | None = None) -> Any:
    """A datasets.Dataset of ``rows`` with an Image column: embedded bytes, or file paths."""
    import datasets

    records = []
    for row in rows:
        name, data = row["image"], png_bytes(str(row["question_id"]))
        if image == "bytes":
            value: Any = {"bytes": data, "path": name}
        else:
            assert images is not None
            images.mkdir(parents=True, exist_ok=True)
            (images / name).write_bytes(data)
            value = os.fspath(images / name)
        records.append({**row, "image": value})
    return datasets.Dataset.from_list(records).cast_column("image", datasets.Image())


def to_parquet(ds: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_parquet(os.fspath(path))


def card(folder: Path, configs: list[dict[str, Any]]) -> None:
    import yaml  # type: ignore[import-untyped]

    front = yaml.safe_dump({"configs": configs, "license": "cc-by-nc-4.0"}, sort_keys=False)
    (folder / "README.md").write_text(f"---\n{front}---\n\n# Synthetic rows, not SIUO\n")


# Each layout writes the gen and MCQA tables into ``folder``.


def card_with_splits(folder: Path) -> None:
    to_parquet(table(GEN), folder / "parts" / "generation" / "test-0.parquet")
    to_parquet(table(MCQA), folder / "parts" / "choice" / "test-0.parquet")
    card(
        folder,
        [
            {
                "config_name": "siuo_gen",
                "data_files": [{"split": "test", "path": "parts/generation/*.parquet"}],
            },
            {
                "config_name": "siuo_mcqa",
                "data_files": [{"split": "test", "path": ["parts/choice/*"]}],
            },
        ],
    )


def card_short_names(folder: Path) -> None:
    to_parquet(table(GEN[:5]), folder / "g" / "train-0.parquet")
    to_parquet(table(GEN[5:]), folder / "g" / "test-0.parquet")  # two splits: both are read
    to_parquet(table(MCQA), folder / "m.parquet")
    card(
        folder,
        [
            {"config_name": "gen", "data_files": {"train": "g/train-*", "test": "g/test-*"}},
            {"config_name": "mcqa", "data_files": "m.parquet"},
        ],
    )


def card_data_dir(folder: Path) -> None:
    to_parquet(table(GEN), folder / "siuo_gen" / "part-a.parquet")
    to_parquet(table(MCQA), folder / "choices" / "part-a.parquet")
    card(
        folder,
        [
            {"config_name": "generation", "data_dir": "siuo_gen"},  # named by its data_dir
            {"config_name": "multiple_choice", "data_dir": "choices"},  # by its columns
        ],
    )


def push_to_hub_default(folder: Path) -> None:
    # What push_to_hub() writes: data/<split>-NNNNN-of-NNNNN.parquet and a card whose
    # "default" config names them; a second config pushed with config_name="siuo_mcqa".
    to_parquet(table(GEN), folder / "data" / "train-00000-of-00001.parquet")
    to_parquet(table(MCQA), folder / "siuo_mcqa" / "train-00000-of-00001.parquet")
    card(
        folder,
        [
            {"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]},
            {
                "config_name": "siuo_mcqa",
                "data_files": [{"split": "train", "path": "siuo_mcqa/train-*"}],
            },
        ],
    )


def push_to_hub_default_without_card(folder: Path) -> None:
    to_parquet(table(GEN), folder / "data" / "train-00000-of-00001.parquet")


def save_to_disk_dict(folder: Path) -> None:
    import datasets

    datasets.DatasetDict({"gen": table(GEN), "mcqa": table(MCQA)}).save_to_disk(os.fspath(folder))


def save_to_disk_per_config(folder: Path, tmp: Path) -> None:
    import datasets

    # Images given as file paths: save_to_disk embeds their bytes.
    datasets.DatasetDict({"test": table(GEN, image="path", images=tmp / "pics")}).save_to_disk(
        os.fspath(folder / "siuo_gen")
    )
    table(MCQA, image="path", images=tmp / "pics").save_to_disk(os.fspath(folder / "mcqa"))


def to_parquet_with_paths(folder: Path) -> None:
    # to_parquet() keeps only the paths of local images; they point inside the folder.
    to_parquet(
        table(GEN, image="path", images=folder / "images"), folder / "siuo_gen" / "t.parquet"
    )
    to_parquet(
        table(MCQA, image="path", images=folder / "images"), folder / "siuo_mcqa" / "t.parquet"
    )


def to_parquet_with_paths_moved(folder: Path, tmp: Path) -> None:
    # Written elsewhere, then the folder is copied: the stored absolute paths are stale, and
    # the images are found by name in the folder's images/.
    staged = tmp / "staged"
    to_parquet_with_paths(staged)
    shutil.copytree(staged, folder)
    shutil.rmtree(staged)


LAYOUTS: list[tuple[Callable[..., None], str]] = [
    (card_with_splits, "parquet"),
    (card_short_names, "parquet"),
    (card_data_dir, "parquet"),
    (push_to_hub_default, "parquet"),
    (save_to_disk_dict, "save_to_disk"),
    (save_to_disk_per_config, "save_to_disk"),
    (to_parquet_with_paths, "parquet"),
    (to_parquet_with_paths_moved, "parquet"),
]


@pytest.mark.parametrize(("write", "layout"), LAYOUTS, ids=[w.__name__ for w, _ in LAYOUTS])
def test_layout_gives_the_official_samples(
    tmp_path: Path, expected: list[tuple[Any, ...]], write: Callable[..., None], layout: str
) -> None:
    folder = tmp_path / "data"
    args = (folder, tmp_path) if write.__code__.co_argcount == 2 else (folder,)
    write(*args)
    ds = load_dataset(folder, tracks=BOTH)
    assert ds.layout == layout
    assert summary(ds) == expected
    for s in [*ds.gen, *ds.mcqa]:
        assert s.image.read_bytes() == png_bytes(s.question_id)


def test_push_to_hub_default_without_a_card_is_told_apart_by_its_columns(
    tmp_path: Path, expected: list[tuple[Any, ...]]
) -> None:
    push_to_hub_default_without_card(tmp_path / "data")
    ds = load_dataset(tmp_path / "data", tracks=BOTH)
    assert summary(ds) == expected[: len(GEN)] and ds.mcqa == []


def test_images_outside_the_folder_are_one_start_up_error_whose_recipe_works(
    tmp_path: Path, expected: list[tuple[Any, ...]]
) -> None:
    import datasets

    folder = tmp_path / "data"
    gen = table(GEN, image="path", images=tmp_path / "elsewhere")
    to_parquet(gen, folder / "siuo_gen" / "t.parquet")
    with pytest.raises(DataError) as info:
        load_dataset(folder)
    msg = str(info.value)
    assert f"{len(GEN)} row(s) have no embedded image bytes" in msg
    assert "siuo_gen/t.parquet row 1 (question_id 1): path '" in msg
    assert "save_to_disk() and push_to_hub() embed them" in msg
    # The recipe the message gives, run as written, embeds the bytes.
    embed = datasets.table.embed_table_storage
    fixed = gen.cast_column("image", datasets.Image()).with_format("arrow")
    fixed = fixed.map(embed, batched=True).with_format(None)
    to_parquet(fixed, folder / "siuo_gen" / "t.parquet")
    shutil.rmtree(tmp_path / "elsewhere")
    assert summary(load_dataset(folder)) == expected[: len(GEN)]


def test_symlinked_image_that_leaves_the_folder_is_not_followed(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    (tmp_path / "outside").mkdir()
    gen = table(GEN[:1], image="path", images=tmp_path / "outside")
    to_parquet(gen, folder / "siuo_gen" / "t.parquet")
    (folder / "images").mkdir()
    (folder / "images" / GEN[0]["image"]).symlink_to(tmp_path / "outside" / GEN[0]["image"])
    with pytest.raises(DataError, match=r"1 row\(s\) have no embedded image bytes"):
        load_dataset(folder)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            lambda f: (f / "rows.jsonl").write_text("{}\n"),
            "holds neither siuo_gen.json nor parquet files nor a save_to_disk dataset*"
            "accepted sources*save_to_disk folder*paths of files inside the folder",
        ),
        (
            lambda f: (
                to_parquet(table(GEN), f / "x.parquet"),
                card(f, [{"config_name": "siuo_gen", "data_files": "nothing/*.parquet"}]),
            ),
            "*config 'siuo_gen': data_files 'nothing/[*].parquet' match no file*",
        ),
        (
            lambda f: (
                (f / "rows.jsonl").write_text("{}\n"),
                card(f, [{"config_name": "gen", "data_files": "rows.jsonl"}]),
            ),
            "*config 'gen': data_files match rows.jsonl, which is not parquet*",
        ),
        (
            lambda f: (
                to_parquet(table(GEN), f / "a" / "0.parquet"),
                to_parquet(table(GEN), f / "b" / "0.parquet"),
                card(
                    f,
                    [
                        {"config_name": "one", "data_files": "a/*"},
                        {"config_name": "two", "data_files": "b/*"},
                    ],
                ),
            ),
            "*configs 'one' and 'two' both hold generation rows*",
        ),
        (
            lambda f: (f / "README.md").write_text("---\nconfigs: [\n---\n"),
            "*dataset card*front matter that is not valid YAML*",
        ),
    ],
    ids=[
        "unknown-files",
        "card-pattern-matches-nothing",
        "card-names-jsonl",
        "two-gen-configs",
        "bad-yaml",
    ],
)
def test_anything_else_is_one_data_error_that_names_the_fix(
    tmp_path: Path, setup: Callable[[Path], Any], message: str
) -> None:
    import fnmatch

    folder = tmp_path / "data"
    folder.mkdir()
    setup(folder)
    with pytest.raises(DataError) as info:
        load_dataset(folder)
    assert fnmatch.fnmatch(str(info.value), "*" + message + "*"), str(info.value)


_HUB = textwrap.dedent(
    """
    import json
    from pytest_siuo.dataset import load_dataset
    ds = load_dataset(tracks=("gen", "mcqa"))
    print(json.dumps([ds.layout, ds.revision, len(ds.gen), len(ds.mcqa)]))
    """
)


@pytest.mark.parametrize("old_cache", [False, True], ids=["cache", "cache-of-an-earlier-version"])
def test_pinned_hub_default_keeps_working_offline_from_the_cache(
    tmp_path: Path, old_cache: bool
) -> None:
    cache = tmp_path / "hub"
    snapshot = write_hub_cache(cache, n_per_domain=1)
    if old_cache:
        # Earlier versions did not fetch the dataset card: the cached tree lists it, the
        # snapshot lacks it, and huggingface_hub calls such a snapshot incomplete.
        (snapshot / "README.md").unlink()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env |= {
        "HF_HUB_CACHE": str(cache),
        "HF_HOME": str(tmp_path / "home"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_CACHE": str(tmp_path / "dsc"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", _HUB], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == ["hub", DEFAULT_HUB_REVISION, 9, 9]
    assert DEFAULT_HUB_DATASET == "sinwang/SIUO"


def test_a_run_on_unembedded_images_stops_at_start_up_with_one_error(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    folder = tmp_path / "data"
    to_parquet(
        table(GEN, image="path", images=tmp_path / "elsewhere"), folder / "gen" / "t.parquet"
    )
    pytester.makeconftest(
        """
        import pytest
        from pytest_siuo.testing.judges import CannedModel, KeywordJudge

        @pytest.fixture(scope="session")
        def siuo_model():
            return CannedModel()

        @pytest.fixture(scope="session")
        def siuo_judge():
            return KeywordJudge()
        """
    )
    result = pytester.runpytest("--siuo", f"--siuo-data={folder}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*9 row(s) have no embedded image bytes*"])
    assert "passed" not in result.stdout.str() and "error" not in result.stdout.str().lower()


def test_a_hub_dataset_in_the_push_to_hub_layout_loads_offline_from_the_cache(
    tmp_path: Path, expected: list[tuple[Any, ...]]
) -> None:
    cache = tmp_path / "hub"
    sha = "1" * 40
    write_hub_cache(cache, "acme/siuo-pushed", sha, n_per_domain=1, layout="pushed")
    script = _HUB.replace("load_dataset(tracks=", 'load_dataset("acme/siuo-pushed", tracks=')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env |= {
        "HF_HUB_CACHE": str(cache),
        "HF_HOME": str(tmp_path / "home"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_CACHE": str(tmp_path / "dsc"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == ["hub", sha, 9, 9]
    # The same files as a local folder give the official samples.
    from pytest_siuo.testing.data import write_pushed

    assert summary(load_dataset(write_pushed(tmp_path / "local", n_per_domain=1), tracks=BOTH)) == (
        expected
    )
