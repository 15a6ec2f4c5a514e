"""Synthetic SIUO-shaped datasets for tests, benchmarks and the example project.

Everything here is made up and harmless (it is clearly not SIUO data, which is CC BY-NC 4.0 and
never shipped): questions ask about the colour of a drawn square, images are small PNGs drawn with
Pillow. The same inputs always give byte-identical files, so tests can compare hashes across
layouts (official JSON, ``datasets`` parquet, Hugging Face hub cache).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from pytest_siuo.dataset import DEFAULT_HUB_REVISION, _quiet_datasets
from pytest_siuo.domains import DOMAINS, slug

__all__ = [
    "gen_rows",
    "make_image",
    "mcqa_rows",
    "png_bytes",
    "write_hub_cache",
    "write_official",
    "write_parquet",
    "write_pushed",
]

_LETTERS = ("A", "B", "C", "D")


def make_image(
    text: str,
    *,
    size: tuple[int, int] = (64, 48),
    color: tuple[int, int, int] | None = None,
) -> Image.Image:
    """A small deterministic RGB image: a background colour derived from ``text``, the text drawn
    on it. Different texts give different pixels (and so different hashes)."""
    if color is None:
        digest = hashlib.sha256(text.encode("utf-8")).digest()
        color = (digest[0], digest[1], digest[2])
    im = Image.new("RGB", size, color)
    draw = ImageDraw.Draw(im)
    ink = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
    draw.rectangle((2, 2, size[0] - 3, size[1] - 3), outline=ink)
    draw.text((4, 4), text, fill=ink)
    return im


def png_bytes(text: str, *, size: tuple[int, int] = (64, 48)) -> bytes:
    """PNG encoding of :func:`make_image` (deterministic for a given Pillow version)."""
    buf = io.BytesIO()
    make_image(text, size=size).save(buf, format="PNG")
    return buf.getvalue()


def gen_rows(n_per_domain: int = 2) -> list[dict[str, Any]]:
    """Synthetic generation-track rows: ``n_per_domain`` per domain, ids 1..N in domain order."""
    rows: list[dict[str, Any]] = []
    qid = 0
    for domain in DOMAINS:
        for k in range(n_per_domain):
            qid += 1
            rows.append(
                {
                    "question_id": qid,
                    "image": f"synthetic-{qid:04d}.png",
                    "question": (
                        f"[synthetic {slug(domain)} #{k + 1}] What colour is the square in this "
                        "picture?"
                    ),
                    "category": domain,
                    "safety_warning": (
                        f"Synthetic test case {qid}: a safe answer names the colour and adds "
                        "nothing else."
                    ),
                    "reference_answer": f"The square is a single colour (synthetic case {qid}).",
                }
            )
    return rows


def mcqa_rows(gen_rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Multiple-choice rows matching ``gen_rows``; the correct option rotates A, B, C, D."""
    rows: list[dict[str, Any]] = []
    for i, row in enumerate(gen_rows):
        correct = _LETTERS[i % len(_LETTERS)]
        options = {
            letter: (
                f"Safe option for synthetic case {row['question_id']}: describe the colour only."
                if letter == correct
                else f"Unsafe option {letter} for synthetic case {row['question_id']}."
            )
            for letter in _LETTERS
        }
        rows.append(
            {
                "question_id": row["question_id"],
                "image": row["image"],
                "question": row["question"],
                "category": row["category"],
                "options": options,
                "correct_option": correct,
            }
        )
    return rows


def _image_writable(name: Any) -> bool:
    # Test rows may carry deliberately bad names; never write outside the folder for them.
    return (
        isinstance(name, str)
        and bool(name)
        and not os.path.isabs(name)
        and ".." not in Path(name).parts
        and "\\" not in name
    )


def _write_images(images: Path, rows: Sequence[Any], size: tuple[int, int]) -> None:
    images.mkdir(parents=True, exist_ok=True)
    for row in rows:
        if isinstance(row, dict) and _image_writable(row.get("image")):
            target = images / row["image"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(png_bytes(str(row.get("question_id")), size=size))


def _dump(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def write_official(
    folder: Path,
    rows: Sequence[dict[str, Any]] | None = None,
    *,
    n_per_domain: int = 2,
    mcqa: bool = True,
    image_size: tuple[int, int] = (64, 48),
) -> Path:
    """Write a synthetic dataset in the official layout into ``folder`` and return ``folder``.

    ``rows`` replaces the generated gen rows (tests pass broken rows this way); the MCQA file is
    derived from them with :func:`mcqa_rows`. One PNG is drawn per row with a usable image name.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    gen = list(rows) if rows is not None else gen_rows(n_per_domain)
    _dump(folder / "siuo_gen.json", gen)
    if mcqa:
        _dump(folder / "siuo_mcqa.json", mcqa_rows(r for r in gen if isinstance(r, dict)))
    _write_images(folder / "images", gen, image_size)
    return folder


def write_parquet(folder: Path, *, n_per_domain: int = 2, mcqa: bool = True) -> Path:
    """The same content as :func:`write_official` in the ``datasets`` parquet layout:
    ``siuo_gen/test-00000-of-00001.parquet`` (and ``siuo_mcqa/...``) with the images embedded
    in an ``Image`` column named ``image``. Written with the real ``datasets`` library."""
    import datasets  # type: ignore[import-untyped]

    folder = Path(folder)
    gen = gen_rows(n_per_domain)
    text = datasets.Value("string")
    common = {
        "question_id": datasets.Value("int64"),
        "image": datasets.Image(),
        "question": text,
        "category": text,
    }
    tables: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = [
        (
            "siuo_gen",
            gen,
            {**common, "safety_warning": text, "reference_answer": text},
        )
    ]
    if mcqa:
        tables.append(
            (
                "siuo_mcqa",
                mcqa_rows(gen),
                {**common, "options": {k: text for k in _LETTERS}, "correct_option": text},
            )
        )
    for config, rows, features in tables:
        records = [
            {**row, "image": {"bytes": png_bytes(str(row["question_id"])), "path": row["image"]}}
            for row in rows
        ]
        ds = datasets.Dataset.from_list(records, features=datasets.Features(features))
        out = folder / config / "test-00000-of-00001.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        with _quiet_datasets():
            ds.to_parquet(os.fspath(out))
    return folder


def write_pushed(folder: Path, *, n_per_domain: int = 2, mcqa: bool = True) -> Path:
    """The same content in the layout ``push_to_hub()`` writes by default: the generation rows
    as the ``default`` config in ``data/train-00000-of-00001.parquet``, the MCQA rows as config
    ``siuo_mcqa``, images embedded, and a dataset card whose ``configs:`` name the files."""
    import datasets

    folder = Path(folder)
    gen = gen_rows(n_per_domain)
    tables = [("default", "data", gen)] + (
        [("siuo_mcqa", "siuo_mcqa", mcqa_rows(gen))] if mcqa else []
    )
    configs = []
    for name, where, rows in tables:
        records = [
            {**row, "image": {"bytes": png_bytes(str(row["question_id"])), "path": row["image"]}}
            for row in rows
        ]
        ds = datasets.Dataset.from_list(records).cast_column("image", datasets.Image())
        out = folder / where / "train-00000-of-00001.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        with _quiet_datasets():
            ds.to_parquet(os.fspath(out))
        configs.append(
            f"- config_name: {name}\n  data_files:\n  - split: train\n    path: {where}/train-*\n"
        )
    (folder / "README.md").write_text(
        "---\nconfigs:\n"
        + "".join(configs)
        + "---\n\n# Synthetic SIUO-shaped test data (not SIUO)\n"
    )
    return folder


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def write_hub_cache(
    cache_dir: Path,
    repo_id: str = "sinwang/SIUO",
    revision: str = DEFAULT_HUB_REVISION,
    *,
    n_per_domain: int = 2,
    layout: str = "official",
    ref: str | None = "main",
    mcqa: bool = True,
) -> Path:
    """Lay out a Hugging Face hub cache snapshot of a synthetic dataset, as huggingface_hub would.

    Creates ``<cache_dir>/datasets--<owner>--<name>/`` with ``blobs/<etag>`` (git sha1 for small
    files, sha256 for LFS-tracked images and parquet), ``snapshots/<revision>/<path>`` as relative
    symlinks into ``blobs/``, ``refs/<ref>`` holding the commit and ``trees/<revision>.json`` (the
    cached tree listing snapshot_download checks a snapshot against when offline). With
    ``HF_HUB_OFFLINE=1`` and ``HF_HUB_CACHE=cache_dir``, ``load_dataset(repo_id)`` then works.

    :param layout: ``"official"`` (JSON + images/), ``"parquet"`` (siuo_gen/*.parquet ...) or
        ``"pushed"`` (what ``push_to_hub()`` writes: data/train-*.parquet and a dataset card).
    :returns: the snapshot folder.
    """
    import tempfile

    cache_dir = Path(cache_dir)
    owner_name = repo_id.replace("/", "--")
    storage = cache_dir / f"datasets--{owner_name}"
    snapshot = storage / "snapshots" / revision
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp)
        if layout == "official":
            write_official(staged, n_per_domain=n_per_domain, mcqa=mcqa)
        elif layout == "parquet":
            write_parquet(staged, n_per_domain=n_per_domain, mcqa=mcqa)
        elif layout == "pushed":
            write_pushed(staged, n_per_domain=n_per_domain, mcqa=mcqa)
        else:
            raise ValueError(f"unknown layout {layout!r}; use 'official', 'parquet' or 'pushed'")
        (staged / ".gitattributes").write_text("*.png filter=lfs diff=lfs merge=lfs -text\n")
        if not (staged / "README.md").exists():  # a dataset card of the layout stays
            (staged / "README.md").write_text("# Synthetic SIUO-shaped test data (not SIUO)\n")
        tree: dict[str, dict[str, Any]] = {}
        for path in sorted(p for p in staged.rglob("*") if p.is_file()):
            rel = path.relative_to(staged).as_posix()
            data = path.read_bytes()
            lfs = path.suffix in {".png", ".jpg", ".jpeg", ".parquet"}
            if lfs:
                sha256 = hashlib.sha256(data).hexdigest()
                pointer = (
                    "version https://git-lfs.github.com/spec/v1\n"
                    f"oid sha256:{sha256}\nsize {len(data)}\n"
                ).encode()
                etag = sha256
                tree[rel] = {
                    "size": len(data),
                    "blob_id": _git_blob_sha1(pointer),
                    "lfs_sha256": sha256,
                    "lfs_size": len(data),
                }
            else:
                etag = _git_blob_sha1(data)
                tree[rel] = {"size": len(data), "blob_id": etag}
            blob = storage / "blobs" / etag
            blob.parent.mkdir(parents=True, exist_ok=True)
            blob.write_bytes(data)
            link = snapshot / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(os.path.relpath(blob, link.parent))
    if ref is not None:
        (storage / "refs").mkdir(parents=True, exist_ok=True)
        (storage / "refs" / ref).write_text(revision)
    (storage / "trees").mkdir(parents=True, exist_ok=True)
    (storage / "trees" / f"{revision}.json").write_text(
        json.dumps({"format_version": 1, "files": tree}, indent=1)
    )
    return snapshot
