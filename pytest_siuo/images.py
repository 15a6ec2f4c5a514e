"""Lazily read, validated sample images.

An :class:`ImageRef` only records where an image lives; nothing is read until a caller needs the
bytes, so a 10,000-sample dataset loads fast and small. The first read checks that the file stays
inside the dataset folder and that Pillow can fully decode it (no truncation, no decompression
bomb), then memoises its SHA-256 and MIME type. Every fault becomes an :class:`ImageError` whose
message names the image, the sample it belongs to, the fault and the fix.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import os
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath, PureWindowsPath

from PIL import Image

from .text import shorten

__all__ = ["ImageError", "ImageRef", "unsafe_image_name"]


class ImageError(Exception):
    """An image that cannot be used; message names the sample, path and fault."""


def unsafe_image_name(name: str) -> str | None:
    """Why ``name`` may not be used as a path relative to the images folder, or ``None`` if fine.

    Checked lexically (no file system access), so the dataset loader can reject such rows up front.
    """
    if not name or not name.strip():
        return "the image name is empty"
    if "\x00" in name:
        return "the image name contains a NUL character"
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if (
        posix.is_absolute()
        or windows.is_absolute()
        or windows.drive
        or name.startswith(("/", "\\"))
    ):
        return "the image name is an absolute path"
    if ".." in posix.parts or ".." in windows.parts:
        return "the image name contains '..'"
    return None


class ImageRef:
    """A lazily read image. Nothing is read at construction (a 10,000-sample dataset must load fast
    and in little memory).

    Build one with :meth:`from_file` or :meth:`from_bytes_loader`. ``name`` is the image's name as
    the dataset gives it (``"S-01.png"``), used in messages and reports.
    """

    __slots__ = ("_lock", "_mime", "_read", "_sha256", "name", "where")

    def __init__(self, name: str, read: Callable[[], bytes], *, where: str) -> None:
        # Private: ``read`` returns raw bytes or raises ImageError; validation happens here.
        self.name = name
        self.where = where
        self._read = read
        self._lock = threading.Lock()
        self._sha256: str | None = None
        self._mime: str | None = None

    # -- constructors -------------------------------------------------------------------------

    @classmethod
    def from_file(
        cls, root: Path, relpath: str, *, where: str, confine_to: Path | None = None
    ) -> ImageRef:
        """An image at ``root / relpath``, read on demand.

        :param root: folder the name is relative to (the dataset's ``images/`` folder).
        :param relpath: the image name from the row, e.g. ``"S-01.png"``.
        :param where: human location of the row, e.g. ``"siuo_gen.json row 12 (question_id 1013)"``.
        :param confine_to: folder the resolved file must stay inside (default ``root``). A hub
            snapshot passes its repo cache folder, whose ``blobs/`` its symlinks point into.
        """
        root = Path(root)
        confine = Path(confine_to) if confine_to is not None else root
        ref: ImageRef

        def read() -> bytes:
            return _read_confined(ref, root, relpath, confine)

        ref = cls(relpath, read, where=where)
        return ref

    @classmethod
    def from_bytes_loader(cls, name: str, loader: Callable[[], bytes], *, where: str) -> ImageRef:
        """An image whose bytes ``loader`` fetches on demand (e.g. one row of a parquet file)."""
        ref: ImageRef

        def read() -> bytes:
            try:
                data = loader()
            except ImageError:
                raise
            except Exception as exc:  # any loader failure is this one sample's fault
                raise ref._error(
                    f"cannot be loaded ({type(exc).__name__}: {_short(str(exc))})",
                    "check that the dataset file is complete and readable",
                ) from exc
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise ref._error(
                    "has no embedded image bytes",
                    "store the image bytes in the dataset's 'image' column",
                )
            return bytes(data)

        ref = cls(name, read, where=where)
        return ref

    # -- public API -----------------------------------------------------------------------------

    def read_bytes(self) -> bytes:
        """The image's original bytes, validated on first read.

        :raises ImageError: missing file, unreadable, escapes the dataset folder, not an image,
            truncated, decompression bomb, or changed since it was first read.
        """
        data = self._read()
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            if self._sha256 is None:
                self._mime = _validate(self, data)
                self._sha256 = digest
            elif digest != self._sha256:
                # Results are cached by content hash; a file changing mid-run would mix answers.
                raise self._error(
                    "changed on disk since it was first read in this run",
                    "do not modify the dataset while tests run",
                )
        return data

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the image bytes, computed once and memoised."""
        if self._sha256 is None:
            self.read_bytes()
        assert self._sha256 is not None
        return self._sha256

    @property
    def mime(self) -> str:
        """MIME type from the decoded format, e.g. ``"image/png"``."""
        if self._mime is None:
            self.read_bytes()
        assert self._mime is not None
        return self._mime

    def data_url(self) -> str:
        """``data:<mime>;base64,...`` of the original bytes (what chat APIs accept inline)."""
        data = self.read_bytes()
        return f"data:{self.mime};base64,{base64.b64encode(data).decode('ascii')}"

    def pil(self) -> Image.Image:
        """The decoded, fully loaded image (decompression bombs rejected)."""
        data = self.read_bytes()
        try:
            with _bomb_guard():
                im = Image.open(io.BytesIO(data))
                _check_pixels(self, im)
                im.load()
        except ImageError:
            raise
        except Exception as exc:
            raise self._decode_error(exc) from exc
        return im

    def __repr__(self) -> str:
        return f"ImageRef({self.name!r}, where={self.where!r})"

    # -- helpers --------------------------------------------------------------------------------

    def _error(self, fault: str, fix: str) -> ImageError:
        where = f" of {self.where}" if self.where else ""
        return ImageError(f"image {self.name!r}{where}: {fault}; {fix}")

    def _decode_error(self, exc: BaseException) -> ImageError:
        if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
            return self._error(
                f"is a decompression bomb ({_short(str(exc))})",
                "replace it with an image of normal size",
            )
        return self._error(
            f"is not a readable image ({type(exc).__name__}: {_short(str(exc))})",
            "replace it with a valid PNG or JPEG file",
        )


@functools.lru_cache(maxsize=64)
def _resolved_folder(folder: Path) -> Path:
    """The dataset folder, resolved once per run rather than once per image read."""
    return folder.resolve(strict=False)


def _read_confined(ref: ImageRef, root: Path, relpath: str, confine: Path) -> bytes:
    problem = unsafe_image_name(relpath)
    if problem is not None:
        raise ref._error(problem, "use a name relative to the dataset's images/ folder")
    path = root / relpath
    try:
        resolved = path.resolve(strict=True)
        boundary = _resolved_folder(confine)
    except FileNotFoundError as exc:
        raise ref._error(
            f"file {os.fspath(path)} does not exist",
            "add the image to the dataset's images/ folder or fix the row's 'image' field",
        ) from exc
    except (OSError, RuntimeError) as exc:  # RuntimeError: symlink loop on older Pythons
        raise ref._error(
            f"file {os.fspath(path)} cannot be resolved ({_short(str(exc))})",
            "fix the file or the row's 'image' field",
        ) from exc
    if not resolved.is_relative_to(boundary):
        # A symlink to /etc/passwd or ~/.ssh must never be sent to a remote model.
        raise ref._error(
            f"resolves to {os.fspath(resolved)}, outside the dataset folder {os.fspath(boundary)}",
            "copy the image into the dataset folder instead of linking to it",
        )
    if not resolved.is_file():
        raise ref._error(
            f"{os.fspath(path)} is not a regular file",
            "point the row's 'image' field at an image file",
        )
    try:
        return resolved.read_bytes()
    except OSError as exc:
        raise ref._error(
            f"file {os.fspath(path)} cannot be read ({_short(str(exc))})",
            "check the file's permissions",
        ) from exc


@contextmanager
def _bomb_guard() -> Iterator[None]:
    """Turn Pillow's DecompressionBombWarning into an error for this block only (never globally)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _check_pixels(ref: ImageRef, im: Image.Image) -> None:
    # Pillow's own check warns only above MAX_IMAGE_PIXELS and may be disabled (None); check the
    # declared size ourselves before any pixel is decoded.
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and im.width * im.height > limit:
        raise ref._error(
            f"is a decompression bomb ({im.width}x{im.height} pixels declared, limit {limit})",
            "replace it with an image of normal size",
        )


def _validate(ref: ImageRef, data: bytes) -> str:
    """Decode ``data`` fully, once; return its MIME type or raise ImageError.

    Every pixel is decoded (which catches truncation and corrupt data) and, for a PNG, every
    chunk's checksum is checked, as ``Image.verify()`` does; formats with another ``verify``
    are verified by it on a second opening, as ``verify()`` leaves the image unusable.
    """
    if not data:
        raise ref._error("is empty (0 bytes)", "replace it with a valid PNG or JPEG file")
    try:
        with _bomb_guard():
            im = Image.open(io.BytesIO(data))
            try:
                _check_pixels(ref, im)
                fmt = im.format
                if type(im).verify is not Image.Image.verify and fmt != "PNG":
                    im.verify()  # structure and checksums, no pixel data
                    im.close()
                    im = Image.open(io.BytesIO(data))
                im.load()
            finally:
                im.close()
            if fmt == "PNG":
                _check_png_chunks(data)
    except ImageError:
        raise
    except Exception as exc:
        raise ref._decode_error(exc) from exc
    mime = Image.MIME.get(fmt or "")
    if mime is None:
        raise ref._error(
            f"has format {fmt!r}, which has no known MIME type",
            "convert it to PNG or JPEG",
        )
    return mime


def _check_png_chunks(data: bytes) -> None:
    """The checks of Pillow's ``PngImageFile.verify()`` on the bytes: every chunk up to IEND is
    complete and has the right CRC (a decode alone skips the checksums of the image data)."""
    view = memoryview(data)
    pos, size = 8, len(data)
    while True:
        if pos + 8 > size:
            raise OSError("truncated PNG file")
        length = int.from_bytes(view[pos : pos + 4], "big")
        cid = bytes(view[pos + 4 : pos + 8])
        if cid == b"IEND":
            return
        end = pos + 8 + length
        if end + 4 > size:
            raise SyntaxError(f"broken PNG file (incomplete checksum in {cid!r})")
        if zlib.crc32(view[pos + 4 : end]) != int.from_bytes(view[end : end + 4], "big"):
            raise SyntaxError(f"broken PNG file (bad header checksum in {cid!r})")
        pos = end + 4


def _short(text: str, limit: int = 200) -> str:
    return shorten(text, limit)
