"""Dataset sources -> schema-checked :class:`Sample` records with lazily read images.

These sources are accepted:

* a local folder in the **official layout**: ``siuo_gen.json`` (and maybe ``siuo_mcqa.json``)
  plus an ``images/`` folder the rows' ``image`` names are relative to;
* a local folder of **parquet files as the datasets library writes them**: config folders
  (``siuo_gen/*.parquet``, ``gen/...``), ``data/siuo_gen-*.parquet``, the ``push_to_hub``
  default ``data/train-*.parquet``, or the files a dataset card (``README.md``) names under
  ``configs:``; an ``Image`` column named ``image`` with the bytes embedded, or with paths of
  files inside the folder (what ``Dataset.to_parquet()`` writes for local images);
* a **save_to_disk** folder (one per config, or a ``DatasetDict``);
* a **Hugging Face hub** dataset id (``sinwang/SIUO`` by default), fetched with
  ``huggingface_hub.snapshot_download`` into the normal HF cache and then read as one of the above.

Every row is checked against the shipped JSON schemas (``schema/*.json``) plus the checks a schema
cannot express; all bad rows are reported in one :class:`DataError`, and so are rows whose image
can be found neither in the file nor inside the folder. Image bytes are never read here: a broken
image surfaces later as an :class:`~pytest_siuo.images.ImageError` for that one sample.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any

from pytest_siuo.domains import DOMAINS, resolve_domain, slug
from pytest_siuo.errors import DataError as DataError  # re-exported: raised here
from pytest_siuo.images import ImageRef, unsafe_image_name
from pytest_siuo.text import shorten

if TYPE_CHECKING:
    import jsonschema  # type: ignore[import-untyped]

__all__ = [
    "DEFAULT_HUB_DATASET",
    "DEFAULT_HUB_REVISION",
    "MAX_TEXT_BYTES",
    "TRACKS",
    "DataError",
    "Dataset",
    "Sample",
    "load_dataset",
]

DEFAULT_HUB_DATASET = "sinwang/SIUO"
DEFAULT_HUB_REVISION = "024e80a01795376b9fed12f8073a12f2275f22ee"

#: Track name -> official JSON file and ``datasets`` config name.
TRACKS: dict[str, tuple[str, str]] = {
    "gen": ("siuo_gen.json", "siuo_gen"),
    "mcqa": ("siuo_mcqa.json", "siuo_mcqa"),
}
#: Largest text field accepted; anything bigger is a sign of a broken file.
MAX_TEXT_BYTES = 64 * 1024
#: Bad rows listed in one DataError before "and N more".
MAX_REPORTED = 20

_SCHEMA_FILES = {"gen": "gen_row.schema.json", "mcqa": "mcqa_row.schema.json"}
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_ID_TEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a string question_id, whole (fullmatch)
_ACCEPTED_LAYOUTS = (
    "accepted sources: a folder in the official SIUO layout (siuo_gen.json, optional "
    "siuo_mcqa.json, images/); a folder of parquet files as the datasets library writes them "
    "(config folders siuo_gen/ or gen/ and siuo_mcqa/ or mcqa/, data/siuo_gen-*.parquet, the "
    "push_to_hub default data/train-*.parquet, or the files its dataset card README.md names "
    "under configs:); a save_to_disk folder (one per config, or a DatasetDict); or a Hugging "
    f"Face hub dataset id such as {DEFAULT_HUB_DATASET!r}. Images go in a datasets Image column "
    "named 'image', with the bytes embedded or as paths of files inside the folder"
)
#: How to put the image bytes into a parquet file (``to_parquet`` keeps local paths only).
_EMBED_HELP = (
    "embed the images when you write the data: save_to_disk() and push_to_hub() embed them; "
    "for to_parquet(), first run ds = ds.cast_column('image', datasets.Image()).with_format("
    "'arrow').map(datasets.table.embed_table_storage, batched=True).with_format(None); or keep "
    "the image files inside the data folder, at the paths the rows name or in images/"
)
#: Config, folder or split names of each track: the official config names and short ones.
_TRACK_NAMES: dict[str, tuple[str, ...]] = {
    "gen": ("siuo_gen", "gen"),
    "mcqa": ("siuo_mcqa", "mcqa"),
}


@dataclass(frozen=True)
class Sample:
    """One SIUO case: an image plus a question that are harmless alone but unsafe together."""

    question_id: str  # str() of the official int id (teams may use strings)
    domain: str  # official category name (domains.DOMAINS)
    question: str
    image: ImageRef = field(hash=False)
    safety_warning: str = ""  # gen track
    reference_answer: str = ""
    options: dict[str, str] | None = field(default=None, hash=False)  # mcqa track
    correct_option: str | None = None
    where: str = ""  # "siuo_gen.json row 12" for messages

    @functools.cached_property
    def case_id(self) -> str:
        """Stable ASCII id, ``"<domain slug>-<question_id>"`` (computed once: it is a key on
        the hot path of every test item)."""
        return f"{slug(self.domain)}-{self.question_id}"

    @property
    def domain_slug(self) -> str:
        """ASCII slug of the domain, e.g. ``"illegal-activities-crime"``."""
        return slug(self.domain)


@dataclass(frozen=True)
class Dataset:
    """The loaded samples of one source, in deterministic order."""

    gen: list[Sample]  # sorted by (domains.DOMAINS index, natural question id order)
    mcqa: list[Sample]  # same order; may be empty if the source has no MCQA file/config
    source: str  # "sinwang/SIUO", "/abs/path/folder", ...
    revision: str | None  # hub commit sha when from the hub, else None
    layout: str  # "official" | "parquet" | "hub"

    def select(self, domains: Collection[str] | None) -> Dataset:
        """The samples of the given domains only (official names or slugs); ``None`` keeps all.

        :raises UnknownDomainError: for a name that is not a SIUO domain.
        """
        if domains is None:
            return self
        wanted = {resolve_domain(d) for d in domains}
        return replace(
            self,
            gen=[s for s in self.gen if s.domain in wanted],
            mcqa=[s for s in self.mcqa if s.domain in wanted],
        )


# ------------------------------------------------------------------------------------------------
# entry point
# ------------------------------------------------------------------------------------------------


def load_dataset(
    source: str | os.PathLike[str] | None = None,
    *,
    revision: str | None = None,
    tracks: Collection[str] = ("gen",),
) -> Dataset:
    """Load and check the SIUO samples of ``source``.

    :param source: a local folder (official or parquet layout) or a hub dataset id
        ``owner/name``; ``None`` means :data:`DEFAULT_HUB_DATASET`.
    :param revision: hub revision (branch, tag or commit); default the pinned commit for
        ``sinwang/SIUO`` and ``main`` for other repos. Ignored for local folders.
    :param tracks: which tracks to load, any of ``"gen"`` and ``"mcqa"``.
    :raises DataError: the source cannot be found or read, or has invalid rows.
    """
    wanted = _check_tracks(tracks)
    if source is None:
        return _load_hub(DEFAULT_HUB_DATASET, revision, wanted)
    text = os.fspath(source)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise DataError(
                f"SIUO data source {text!r} is a file, not a folder; pass the folder that holds "
                f"it. {_ACCEPTED_LAYOUTS}"
            )
        folder = path.resolve()
        return _load_folder(folder, wanted, source=str(folder), revision=None, confine=folder)
    if _HUB_ID.fullmatch(text):
        return _load_hub(text, revision, wanted)
    raise DataError(
        f"SIUO data source {text!r}: no such folder, and it is not a hub dataset id of the form "
        f"'owner/name'. {_ACCEPTED_LAYOUTS}"
    )


def _check_tracks(tracks: Collection[str]) -> tuple[str, ...]:
    if isinstance(tracks, str):  # a bare "gen" would otherwise iterate as letters
        tracks = (tracks,)
    unknown = [t for t in tracks if t not in TRACKS]
    if unknown or not tracks:
        raise ValueError(
            f"unknown SIUO track(s) {unknown or list(tracks)!r}; use one or both of: "
            f"{', '.join(TRACKS)}"
        )
    return tuple(t for t in TRACKS if t in tracks)


# ------------------------------------------------------------------------------------------------
# layouts
# ------------------------------------------------------------------------------------------------


def _load_folder(
    folder: Path,
    tracks: tuple[str, ...],
    *,
    source: str,
    revision: str | None,
    confine: Path,
    layout: str | None = None,
) -> Dataset:
    if any((folder / TRACKS[t][0]).is_file() for t in TRACKS):
        records = _official_records(folder, tracks, confine)
        found_layout = "official"
    else:
        tables = _card_tables(folder)
        found_layout = "parquet"
        if tables is None:
            tables = _disk_tables(folder)
            if tables:
                found_layout = "save_to_disk"
            else:
                tables = _parquet_tables(folder)
        if not tables and not _parquet_files(folder):
            raise DataError(
                f"SIUO data folder {os.fspath(folder)} holds neither siuo_gen.json nor parquet "
                f"files nor a save_to_disk dataset. {_ACCEPTED_LAYOUTS}"
            )
        records = _table_records(folder, tables, tracks, confine)
    gen, mcqa = _build_samples(folder, records, tracks)
    return Dataset(
        gen=gen, mcqa=mcqa, source=source, revision=revision, layout=layout or found_layout
    )


@dataclass
class _Record:
    """One raw row and how to reach its image, before validation."""

    label: str  # "siuo_gen.json" or "siuo_gen/test-00000.parquet"
    index: int  # 1-based row number in that file
    row: Any
    image_ref: Callable[[str, str], ImageRef]  # (image name, where) -> ImageRef
    check_image_name: bool  # official layout: the name is a path, so it must stay relative


def _official_records(
    folder: Path, tracks: tuple[str, ...], confine: Path
) -> dict[str, list[_Record]]:
    images = folder / "images"
    shared: dict[str, ImageRef] = {}

    def image_ref(name: str, where: str) -> ImageRef:
        # Both tracks usually point at the same file: one ImageRef means one read and one hash.
        ref = shared.get(name)
        if ref is None:
            ref = shared[name] = ImageRef.from_file(images, name, where=where, confine_to=confine)
        return ref

    out: dict[str, list[_Record]] = {}
    for track in tracks:
        filename = TRACKS[track][0]
        path = folder / filename
        if not path.is_file():
            if track == "mcqa" and "gen" in tracks:
                out[track] = []  # MCQA is optional alongside gen
                continue
            raise DataError(
                f"SIUO data folder {os.fspath(folder)} has no {filename}, which the {track!r} "
                f"track needs; add it or do not request that track. {_ACCEPTED_LAYOUTS}"
            )
        rows = _read_json_rows(path)
        out[track] = [
            _Record(filename, i, row, image_ref, check_image_name=True)
            for i, row in enumerate(rows, start=1)
        ]
    return out


def _read_json_rows(path: Path) -> list[Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read SIUO data file {os.fspath(path)}: {exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"SIUO data file {os.fspath(path)} is not valid UTF-8 (line {line}, byte offset "
            f"{exc.start}: {exc.reason}); save it as UTF-8"
        ) from None
    del raw
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"SIUO data file {os.fspath(path)} is not valid JSON (line {exc.lineno}, column "
            f"{exc.colno}: {exc.msg}); fix the syntax or re-download the file"
        ) from None
    except RecursionError:
        raise DataError(
            f"SIUO data file {os.fspath(path)} nests JSON too deeply to read; it is not a SIUO "
            "data file (a list of row objects)"
        ) from None
    if not isinstance(data, list):
        raise DataError(
            f"SIUO data file {os.fspath(path)} holds a JSON {_json_type(data)}, but must hold a "
            "list of row objects ([{...}, {...}])"
        )
    return data


def _parquet_files(folder: Path) -> list[Path]:
    # Skip hidden folders: huggingface_hub keeps metadata in .cache/ inside local_dir downloads.
    return sorted(
        p
        for p in folder.rglob("*.parquet")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _track_named(name: str) -> str | None:
    key = name.strip().lower().replace("-", "_")
    return next((t for t, names in _TRACK_NAMES.items() if key in names), None)


def _track_of_columns(columns: Collection[str]) -> str | None:
    """The track whose rows have these columns (a config not named after a track)."""
    if "options" in columns or "correct_option" in columns:
        return "mcqa"
    if "safety_warning" in columns or "reference_answer" in columns:
        return "gen"
    return None


@dataclass(frozen=True)
class _Table:
    """One table of rows: a parquet file or a save_to_disk folder (one split)."""

    path: Path
    kind: str  # "parquet" or "arrow"
    track: str | None  # from its config, folder or split name; None: from its columns
    config: str  # what a message calls its group: the config or folder name


def _config_of(relpath: PurePosixPath) -> str | None:
    for track, (_, config) in TRACKS.items():
        if config in relpath.parts[:-1]:
            return track
        name = relpath.name
        if name.startswith((config + "-", config + "_", config + ".")):
            return track
    # The short config names, as folders only (a file "gen-0.parquet" is too vague).
    for part in relpath.parts[:-1]:
        if _track_named(part):
            return _track_named(part)
    return None


_PUSHED_SHARD = re.compile(r"[A-Za-z0-9_.]+-\d{5}-of-\d{5}\.parquet")


def _parquet_tables(folder: Path) -> list[_Table]:
    """Parquet files named after a config, and ``push_to_hub``'s default ``data/<split>-*``."""
    tables = []
    for f in _parquet_files(folder):
        rel = PurePosixPath(f.relative_to(folder).as_posix())
        track = _config_of(rel)
        if track is not None:
            tables.append(_Table(f, "parquet", track, TRACKS[track][1]))
        elif rel.parts[:-1] == ("data",) and _PUSHED_SHARD.fullmatch(rel.name):
            tables.append(_Table(f, "parquet", None, "default"))
    return tables


def _front_matter(card: Path) -> Any:
    import yaml  # type: ignore[import-untyped]  # a dependency of datasets

    try:
        text = card.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
    m = re.match(r"---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|$)", text, re.DOTALL)
    if m is None:
        return None
    try:
        return yaml.safe_load(m.group(1))
    except yaml.YAMLError as exc:
        raise DataError(
            f"the dataset card {os.fspath(card)} has front matter that is not valid YAML "
            f"({_short(str(exc), 200)}); fix it or remove the card's configs:"
        ) from None


def _patterns(data_files: Any) -> list[str] | None:
    """The path patterns of a card's ``data_files`` (every split), or None if malformed."""
    if isinstance(data_files, str):
        return [data_files]
    if isinstance(data_files, Mapping):  # {split: pattern(s)}
        data_files = [{"split": k, "path": v} for k, v in data_files.items()]
    if not isinstance(data_files, list):
        return None
    out: list[str] = []
    for item in data_files:
        path = item.get("path") if isinstance(item, Mapping) else item
        paths: list[Any] = path if isinstance(path, list) else [path]
        if not all(isinstance(p, str) and p for p in paths):
            return None
        out += [str(p) for p in paths]
    return out


def _card_tables(folder: Path) -> list[_Table] | None:
    """The tables a dataset card's ``configs:`` name, or None when there is no such card."""
    card = folder / "README.md"
    meta = _front_matter(card) if card.is_file() else None
    configs = meta.get("configs") if isinstance(meta, Mapping) else None
    if not isinstance(configs, list) or not configs:
        return None
    tables: list[_Table] = []
    for entry in configs:
        if not isinstance(entry, Mapping):
            continue
        name = str(entry.get("config_name") or "default")
        data_dir = entry.get("data_dir")
        where = f"the dataset card {os.fspath(card)}, config {name!r}"
        patterns = _patterns(entry.get("data_files"))
        if patterns is None and isinstance(data_dir, str) and data_dir:
            patterns = [f"{data_dir.strip('/')}/**/*"]
        if patterns is None:
            raise DataError(
                f"{where}: data_files is missing or not a path, a list of paths or a list of "
                "{split, path}; give the parquet files of the config"
            )
        track = _track_named(name)
        if track is None and isinstance(data_dir, str) and data_dir:
            track = _track_named(PurePosixPath(data_dir).name)
        files: list[Path] = []
        for pattern in patterns:
            rel = PurePosixPath(pattern)
            if rel.is_absolute() or ".." in rel.parts:
                raise DataError(
                    f"{where}: data_files {pattern!r} leaves the folder; use a "
                    "path relative to the card"
                )
            files += [p for p in sorted(folder.glob(pattern)) if p.is_file()]
        files = sorted(set(files))
        other = [p for p in files if p.suffix != ".parquet" and p.name != "README.md"]
        if other:
            raise DataError(
                f"{where}: data_files match {other[0].relative_to(folder).as_posix()}, which is "
                "not parquet; only parquet data files are read (or use the official layout: "
                f"siuo_gen.json, siuo_mcqa.json, images/). {_ACCEPTED_LAYOUTS}"
            )
        found = [p for p in files if p.suffix == ".parquet"]
        if not found and track is not None:
            raise DataError(
                f"{where}: data_files {', '.join(map(repr, patterns))} match no file in "
                f"{os.fspath(folder)}; fix the pattern or add the files"
            )
        tables += [_Table(p, "parquet", track, name) for p in found]
    return tables


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (
        (path / "state.json").is_file() and (path / "dataset_info.json").is_file()
    )


def _disk_tables(folder: Path) -> list[_Table]:
    """``save_to_disk`` output: the folder itself, or one folder per config; a DatasetDict
    counts each split."""
    roots: list[tuple[Path, str | None]]
    if _is_saved_dataset(folder):
        roots = [(folder, None)]
    else:
        roots = [
            (sub, _track_named(sub.name))
            for sub in sorted(folder.iterdir())
            if sub.is_dir() and _is_saved_dataset(sub)
        ]
    tables = []
    for root, track in roots:
        config = root.name
        listing = root / "dataset_dict.json"
        if listing.is_file():
            try:
                splits = json.loads(listing.read_text("utf-8"))["splits"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise DataError(
                    f"cannot read the save_to_disk listing {os.fspath(listing)} "
                    f"({type(exc).__name__}); save the dataset again"
                ) from None
            for split in splits:
                tables.append(
                    _Table(root / str(split), "arrow", track or _track_named(str(split)), config)
                )
        else:
            tables.append(_Table(root, "arrow", track, config))
    return tables


def _table_records(
    folder: Path, tables: list[_Table], tracks: tuple[str, ...], confine: Path
) -> dict[str, list[_Record]]:
    by_track: dict[str, list[tuple[_Table, Any]]] = {t: [] for t in TRACKS}
    configs: dict[str, str] = {}
    for table in tables:
        ds = _open_table(folder, table)
        track = table.track or _track_of_columns(ds.column_names)
        if track is None:
            continue  # a config that is not SIUO rows (e.g. a dataset's extra material)
        first = configs.setdefault(track, table.config)
        if first != table.config and table.track is None:
            raise DataError(
                f"SIUO data folder {os.fspath(folder)}: configs {first!r} and {table.config!r} "
                f"both hold {'multiple-choice' if track == 'mcqa' else 'generation'} rows; keep "
                f"one, or name the SIUO ones {TRACKS['gen'][1]}/{TRACKS['mcqa'][1]} (or gen/mcqa)"
            )
        by_track[track].append((table, ds))
    out: dict[str, list[_Record]] = {}
    missing: list[str] = []
    for track in tracks:
        config = TRACKS[track][1]
        if not by_track[track]:
            if track == "mcqa" and "gen" in tracks:
                out[track] = []
                continue
            found = ", ".join(
                _label(folder, p) for p in ([t.path for t in tables] or _parquet_files(folder))[:10]
            )
            raise DataError(
                f"SIUO data folder {os.fspath(folder)} has no parquet files for config "
                f"{config!r} nor a save_to_disk folder of it (found: {found}); name them "
                f"{config}/<split>-*.parquet or "
                f"data/{config}-*.parquet, name the config {config} in the dataset card, or "
                f"save it to {config}/ with save_to_disk. {_ACCEPTED_LAYOUTS}"
            )
        out[track] = [
            rec
            for table, ds in by_track[track]
            for rec in _dataset_records(folder, table, ds, confine, missing)
        ]
    if missing:
        shown = missing[:MAX_REPORTED]
        more = len(missing) - len(shown)
        raise DataError(
            f"SIUO data in {os.fspath(folder)}: {len(missing)} row(s) have no embedded image "
            "bytes, and the image path they name is not a file inside the folder:\n  "
            + "\n  ".join(shown)
            + (f"\n  ... and {more} more" if more else "")
            + f"\nTo fix this, {_EMBED_HELP}"
        )
    return out


def _label(folder: Path, path: Path) -> str:
    rel = path.relative_to(folder).as_posix()
    return rel if rel != "." else path.name


def _open_table(folder: Path, table: _Table) -> Any:
    # Heavy imports: only when a parquet or save_to_disk source is used.
    import datasets  # type: ignore[import-untyped]

    try:
        with _quiet_datasets():
            if table.kind == "parquet":
                ds = datasets.Dataset.from_parquet(os.fspath(table.path))
            else:
                ds = datasets.load_from_disk(os.fspath(table.path))
    except Exception as exc:
        what = "parquet file" if table.kind == "parquet" else "save_to_disk folder"
        raise DataError(
            f"cannot read SIUO {what} {os.fspath(table.path)} ({type(exc).__name__}: "
            f"{_short(str(exc))}); re-download or re-export it"
        ) from exc
    if not isinstance(ds, datasets.Dataset):
        raise DataError(
            f"SIUO save_to_disk folder {os.fspath(table.path)} holds a "
            f"{type(ds).__name__}, not one table; give its split folders"
        )
    return ds


def _dataset_records(
    folder: Path, table: _Table, ds: Any, confine: Path, missing: list[str]
) -> list[_Record]:
    import datasets
    import pyarrow.compute as pc  # type: ignore[import-untyped]

    label = _label(folder, table.path)
    where = os.fspath(table.path)
    if "image" not in ds.column_names:
        raise DataError(
            f"SIUO data {where} has no 'image' column (columns: {', '.join(ds.column_names)}); "
            "export the images as a datasets Image column named 'image'"
        )
    try:
        # Keep images undecoded: bytes are fetched per row on demand, never all at once.
        ds = ds.cast_column("image", datasets.Image(decode=False))
    except Exception as exc:
        raise DataError(
            f"SIUO data {where}: column 'image' is not an image column "
            f"({ds.features['image']}); export it as a datasets Image feature "
            "({'bytes', 'path'})"
        ) from exc
    # Only the small 'path' child and the nullness of 'bytes' are materialised here.
    column = ds.data.column("image")
    paths = pc.struct_field(column, "path").to_pylist()
    embedded = pc.is_valid(pc.struct_field(column, "bytes")).to_pylist()
    text_rows = ds.remove_columns(["image"]).to_list()
    images = ds.select_columns(["image"])
    base = table.path.parent if table.kind == "parquet" else table.path

    def from_bytes(i: int) -> Callable[[str, str], ImageRef]:
        def make(name: str, where: str) -> ImageRef:
            return ImageRef.from_bytes_loader(
                name, functools.partial(_parquet_image_bytes, images, i), where=where
            )

        return make

    def from_file(path: Path) -> Callable[[str, str], ImageRef]:
        def make(name: str, where: str) -> ImageRef:
            return ImageRef.from_file(path.parent, path.name, where=where, confine_to=confine)

        return make

    records = []
    for i, (row, img_path, has_bytes) in enumerate(zip(text_rows, paths, embedded, strict=True)):
        if isinstance(row.get("options"), dict):
            # A struct column gives every row every letter; absent options come back as None.
            row["options"] = {k: v for k, v in row["options"].items() if v is not None}
        row["image"] = _basename(img_path) if img_path else f"{row.get('question_id')}.png"
        make = from_bytes(i)
        if not has_bytes:
            found = _image_file(folder, base, confine, img_path) if img_path else None
            if found is None:
                qid = _id_text(row)
                missing.append(
                    f"{label} row {i + 1}"
                    + (f" (question_id {qid})" if qid is not None else "")
                    + (f": path {_brief(img_path)}" if img_path else ": no path either")
                )
            else:
                make = from_file(found)
        records.append(_Record(label, i + 1, row, make, check_image_name=False))
    return records


def _image_file(folder: Path, base: Path, confine: Path, stored: str) -> Path | None:
    """The file a stored image path names, looked for inside the folder only: as a path
    relative to the table or the folder, then by its name in ``images/`` or next to the table
    (a path written on another machine still finds its file)."""
    posix = PurePosixPath(stored.replace("\\", "/"))
    candidates: list[Path] = []
    if not posix.is_absolute() and ".." not in posix.parts and not PureWindowsPath(stored).drive:
        candidates += [base / posix, folder / posix]
    elif posix.is_absolute():
        candidates.append(Path(stored))
    name = _basename(stored)
    if name:
        candidates += [folder / "images" / name, base / name]
    inside = confine.resolve()
    for candidate in candidates:
        try:
            resolved = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if resolved.is_file() and resolved.is_relative_to(inside):
            return candidate
    return None


def _parquet_image_bytes(images: Any, index: int) -> Any:
    value = images[index]["image"]
    # None (no embedded bytes) is passed through: ImageRef reports it for this sample.
    return value.get("bytes") if isinstance(value, dict) else None


def _basename(path: str) -> str:
    # Paths inside parquet files are labels only (often absolute paths of the exporting machine).
    return PureWindowsPath(PurePosixPath(path).name).name or path


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    """Hide datasets' progress bars while we read (restores the user's setting afterwards)."""
    from datasets.utils.tqdm import (  # type: ignore[import-untyped]
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()


# ------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------


@functools.cache
def _validator(track: str) -> jsonschema.protocols.Validator:
    import jsonschema

    text = (resources.files("pytest_siuo") / "schema" / _SCHEMA_FILES[track]).read_text("utf-8")
    return jsonschema.Draft202012Validator(json.loads(text))


def _schema_path(track: str) -> str:
    return os.fspath(Path(__file__).parent / "schema" / _SCHEMA_FILES[track])


def _build_samples(
    folder: Path, records: Mapping[str, list[_Record]], tracks: tuple[str, ...]
) -> tuple[list[Sample], list[Sample]]:
    problems: list[str] = []
    built: dict[str, list[Sample]] = {}
    for track in tracks:
        seen: dict[str, _Record] = {}
        samples: list[Sample] = []
        for rec in records.get(track, []):
            sample = _check_row(track, rec, seen, problems)
            if sample is not None:
                samples.append(sample)
        built[track] = samples
    if "gen" in tracks and "mcqa" in tracks:
        gen_ids = {s.question_id for s in built["gen"]}
        gen_all = {_id_text(r.row) for r in records.get("gen", [])}
        for rec in records.get("mcqa", []):
            qid = _id_text(rec.row)
            if qid is not None and qid not in gen_ids and qid not in gen_all:
                gen_label = records["gen"][0].label if records.get("gen") else "the gen track"
                problems.append(
                    f"{_loc(rec)}: field 'question_id': no row of {gen_label} has this id; add "
                    "the matching gen row or remove this one"
                )
    if problems:
        shown = problems[:MAX_REPORTED]
        more = len(problems) - len(shown)
        schemas = ", ".join(_schema_path(t) for t in tracks)
        raise DataError(
            f"invalid SIUO data in {os.fspath(folder)}: {len(problems)} problem(s); fix these "
            f"rows (rows count from 1; row schemas: {schemas}):\n  "
            + "\n  ".join(shown)
            + (f"\n  ... and {more} more" if more else "")
        )
    return (
        sorted(built.get("gen", []), key=_order),
        sorted(built.get("mcqa", []), key=_order),
    )


def _order(sample: Sample) -> tuple[int, tuple[tuple[int, int | str], ...], str]:
    return (DOMAINS.index(sample.domain), _natural(sample.question_id), sample.question_id)


def _natural(text: str) -> tuple[tuple[int, int | str], ...]:
    # "acme-7" before "acme-10"; numbers (kind 0) sort before text (kind 1) so keys always compare.
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text) if part
    )


def _id_text(row: Any) -> str | None:
    if not isinstance(row, dict):
        return None
    qid = row.get("question_id")
    if isinstance(qid, bool):
        return None
    if isinstance(qid, float) and qid.is_integer():
        qid = int(qid)  # JSON Schema counts 1013.0 as an integer; keep the id text "1013"
    if isinstance(qid, int):
        return str(qid)
    if isinstance(qid, str) and qid and len(qid) <= 64:
        return qid
    return None


def _loc(rec: _Record) -> str:
    qid = _id_text(rec.row)
    if qid is not None and not _ID_TEXT.fullmatch(qid):
        qid = repr(qid)  # shown with its escapes: an odd id must not break the message's line
    return f"{rec.label} row {rec.index}" + (f" (question_id {qid})" if qid is not None else "")


def _check_row(
    track: str, rec: _Record, seen: dict[str, _Record], problems: list[str]
) -> Sample | None:
    row = rec.row
    loc = _loc(rec)
    if not isinstance(row, dict):
        problems.append(f"{loc}: the row is a JSON {_json_type(row)}, not an object {{...}}")
        return None
    before = len(problems)
    # Reject huge strings before jsonschema sees them: its messages embed repr(instance).
    checked, huge = _without_huge_texts(row)
    for name in huge:
        problems.append(
            f"{loc}: field '{name}': text larger than {MAX_TEXT_BYTES // 1024} KiB; a value this "
            "large means the file is broken, re-export it"
        )
    for err in _validator(track).iter_errors(checked):
        path = [str(p) for p in err.absolute_path]
        if path and path[0] in huge:
            continue
        problems.extend(f"{loc}: {msg}" for msg in _describe(err, checked))
    # jsonschema reports each missing field in an error of its own that lists them all: each
    # problem once per row.
    problems[before:] = list(dict.fromkeys(problems[before:]))
    raw_id = row.get("question_id")
    if isinstance(raw_id, str) and raw_id.endswith("\n") and _ID_TEXT.fullmatch(raw_id[:-1]):
        # The schema's "$" (re.search) lets one trailing newline through: "dup" and "dup\n"
        # would both pass and look the same in every report.
        problems.append(
            f"{loc}: field 'question_id': {_brief(raw_id)} ends in a newline; remove it"
        )
    qid = _id_text(row)
    if qid is not None and "question_id" not in huge:
        first = seen.get(qid)
        if first is not None:
            problems.append(
                f"{loc}: field 'question_id': duplicate of {first.label} row {first.index}; "
                "give each row a unique id"
            )
        else:
            seen[qid] = rec
    image = row.get("image")
    if rec.check_image_name and isinstance(image, str) and image and "image" not in huge:
        reason = unsafe_image_name(image)
        if reason is not None:
            problems.append(
                f"{loc}: field 'image': {_brief(image)}: {reason}; give a file name relative to "
                "the dataset's images/ folder"
            )
    if track == "mcqa":
        options, correct = row.get("options"), row.get("correct_option")
        if (
            isinstance(options, dict)
            and isinstance(correct, str)
            and re.fullmatch(r"[A-Z]", correct)
            and correct not in options
        ):
            problems.append(
                f"{loc}: field 'correct_option': {correct!r} is not one of the option keys "
                f"{sorted(options)}; use one of them"
            )
    if len(problems) > before:
        return None
    assert qid is not None
    where = f"{rec.label} row {rec.index}"
    ref = rec.image_ref(str(row["image"]), f"{where} (question_id {qid})")
    if track == "gen":
        return Sample(
            question_id=qid,
            domain=row["category"],
            question=row["question"],
            image=ref,
            safety_warning=row["safety_warning"],
            reference_answer=row["reference_answer"],
            where=where,
        )
    return Sample(
        question_id=qid,
        domain=row["category"],
        question=row["question"],
        image=ref,
        options={str(k): str(v) for k, v in row["options"].items()},
        correct_option=row["correct_option"],
        where=where,
    )


def _without_huge_texts(row: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    huge: list[str] = []
    checked = row
    for key, value in row.items():
        if _too_big(value) or (
            isinstance(value, dict) and any(_too_big(v) for v in value.values())
        ):
            huge.append(str(key))
    if huge:
        # A placeholder keeps the rest of the row checkable without copying the big value.
        checked = {k: ("x" if k in huge else v) for k, v in row.items()}
    return checked, huge


def _too_big(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    n = len(value)
    if n > MAX_TEXT_BYTES:
        return True
    # Only short enough strings are encoded to count their UTF-8 bytes.
    return n > MAX_TEXT_BYTES // 4 and len(value.encode("utf-8")) > MAX_TEXT_BYTES


def _describe(err: jsonschema.ValidationError, row: dict[str, Any]) -> list[str]:
    """Turn one schema error into messages naming the field, the value and the fix."""
    kind = err.validator
    path = [str(p) for p in err.absolute_path]
    where = "field '" + ".".join(path) + "'" if path else "row"
    value = err.instance
    if kind == "required":
        return [
            f"field {name!r}: missing; add it"
            for name in err.validator_value
            if isinstance(name, str) and name not in value
        ]
    if kind == "type":
        expected = err.validator_value
        names = " or ".join(expected) if isinstance(expected, list) else str(expected)
        return [f"{where}: {_brief(value)} is a JSON {_json_type(value)}, expected {names}"]
    if kind == "minLength":
        return [f"{where}: is empty; give a non-empty text"]
    if kind == "maxLength":
        return [f"{where}: is {len(value)} characters long, more than {err.validator_value}"]
    if kind == "minimum":
        return [f"{where}: {value!r} is negative; use an id >= 0"]
    if kind == "minProperties":
        return [f"{where}: has {len(value)} option(s); give at least {err.validator_value}"]
    if kind == "pattern":
        if path and path[0] == "question_id":
            return [
                f"{where}: {_brief(value)} is not a valid id; use ASCII letters, digits, '.', "
                "'_' or '-', starting with a letter or digit"
            ]
        if path and path[0] == "options" and len(path) == 1:
            return [f"{where}: option key {_brief(value)} is not a single letter 'A'..'Z'"]
        return [f"{where}: {_brief(value)} is not a single upper-case letter 'A'..'Z'"]
    return [f"{where}: {_short(err.message)}"]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _brief(value: Any) -> str:
    return _short(repr(value), 80)


_short = shorten


# ------------------------------------------------------------------------------------------------
# Hugging Face hub
# ------------------------------------------------------------------------------------------------


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def _hub_offline() -> bool:
    from huggingface_hub import constants

    # huggingface_hub reads HF_HUB_OFFLINE once at import; also honour a value set later
    # (a conftest or a test may set it after the import happened).
    env = os.environ
    return (
        constants.is_offline_mode()
        or _truthy(env.get("HF_HUB_OFFLINE"))
        or _truthy(env.get("TRANSFORMERS_OFFLINE"))
    )


def _hub_cache_dir() -> str | None:
    """The hub cache folder from the environment as it is now (``None``: the library default)."""
    env = os.environ

    def expand(p: str) -> str:
        return os.path.expandvars(os.path.expanduser(p))

    if env.get("HF_HUB_CACHE"):
        return expand(env["HF_HUB_CACHE"])
    if env.get("HUGGINGFACE_HUB_CACHE"):
        return expand(env["HUGGINGFACE_HUB_CACHE"])
    if env.get("HF_HOME"):
        return os.path.join(expand(env["HF_HOME"]), "hub")
    return None


def _allow_patterns(tracks: tuple[str, ...], *, card: bool = True) -> list[str]:
    """What to fetch of a hub dataset: the official files, parquet files and, with ``card``,
    the dataset card (its ``configs:`` say which files hold which config)."""
    patterns = [TRACKS[t][0] for t in tracks]
    patterns += [f"*{TRACKS[t][1]}*.parquet" for t in tracks]
    patterns.append("images/*")
    if card:
        patterns += ["README.md", "*.parquet"]
    return patterns


def _snapshot_complete(folder: Path, tracks: tuple[str, ...], *, strict: bool) -> bool:
    """Whether a cached snapshot holds the requested tracks.

    Not ``strict`` (offline, nothing better to get): MCQA next to gen is optional, as it is for
    a local folder. ``strict`` (online): a missing file is worth a download attempt.
    """
    if any((folder / TRACKS[t][0]).is_file() for t in TRACKS):
        optional = {"mcqa"} if not strict and "gen" in tracks else set()
        return all((folder / TRACKS[t][0]).is_file() for t in tracks if t not in optional)
    return bool(_parquet_files(folder))


def _load_hub(repo_id: str, revision: str | None, tracks: tuple[str, ...]) -> Dataset:
    from huggingface_hub import HfApi, constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    rev = revision or (DEFAULT_HUB_REVISION if repo_id == DEFAULT_HUB_DATASET else "main")
    offline = _hub_offline()
    cache_dir = _hub_cache_dir()
    patterns = _allow_patterns(tracks)
    snapshot: str | None = None

    def help_text(reason: str) -> str:
        where = cache_dir or constants.HF_HUB_CACHE
        return (
            f"cannot load SIUO dataset {repo_id!r} (revision {rev}): {reason}, and no complete "
            f"cached copy is in {where}. To get the data: run once with network access to fill "
            "the cache, or pass --siuo-data=PATH to a local copy in the official layout "
            "(siuo_gen.json, siuo_mcqa.json, images/); if the dataset is gated, accept its "
            f"terms on https://huggingface.co/datasets/{repo_id} and set HF_TOKEN"
        )

    def cached(strict: bool) -> str | None:
        # A copy cached by an earlier version lacks the card and extra parquet files, which
        # huggingface_hub then calls incomplete: the narrower patterns still find it.
        for allow in (patterns, _allow_patterns(tracks, card=False)):
            try:
                found = snapshot_download(
                    repo_id,
                    repo_type="dataset",
                    revision=rev,
                    allow_patterns=allow,
                    cache_dir=cache_dir,
                    local_files_only=True,
                )
            except (LocalEntryNotFoundError, OSError, ValueError):
                continue
            if _snapshot_complete(Path(found), tracks, strict=strict):
                return found
        return None

    if offline or _COMMIT.fullmatch(rev):
        # A commit is immutable, so a cached snapshot is authoritative: no network needed.
        snapshot = cached(strict=not offline)
        if snapshot is None and offline:
            raise DataError(help_text("offline mode is on (HF_HUB_OFFLINE=1)"))

    if snapshot is None:
        # One plain request first: it does not retry, so a dead network fails in seconds
        # (snapshot_download's tree listing retries with back-off for tens of seconds).
        try:
            HfApi().dataset_info(repo_id, revision=rev, timeout=10)
            snapshot = snapshot_download(
                repo_id,
                repo_type="dataset",
                revision=rev,
                allow_patterns=patterns,
                cache_dir=cache_dir,
            )
        except GatedRepoError as exc:
            raise DataError(
                f"SIUO dataset {repo_id!r} is gated: accept its terms on "
                f"https://huggingface.co/datasets/{repo_id} and set HF_TOKEN to a token of that "
                "account (or pass --siuo-data=PATH to a local copy)"
            ) from exc
        except RevisionNotFoundError as exc:
            raise DataError(
                f"SIUO dataset {repo_id!r} has no revision {rev!r}; pass an existing branch, tag "
                "or commit"
            ) from exc
        except RepositoryNotFoundError as exc:
            raise DataError(
                f"SIUO dataset {repo_id!r} was not found on the Hugging Face hub; check the "
                "name, or set HF_TOKEN if it is private, or pass --siuo-data=PATH to a local copy"
            ) from exc
        except Exception as exc:  # network down, DNS, TLS, proxy, hub error, disk full...
            # A branch such as "main" may still be cached from an earlier run: use it.
            snapshot = cached(strict=False)
            if snapshot is None:
                if isinstance(exc, HfHubHTTPError) and exc.response is not None:
                    reason = f"the hub answered HTTP {exc.response.status_code}"
                else:
                    reason = f"the hub could not be reached ({type(exc).__name__})"
                raise DataError(help_text(reason)) from exc

    folder = Path(snapshot)
    # Snapshot files are symlinks into the repo's blobs/ folder two levels up.
    return _load_folder(
        folder,
        tracks,
        source=repo_id,
        revision=folder.name,
        confine=folder.parent.parent,
        layout="hub",
    )
