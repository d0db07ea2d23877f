"""Path and upload safety: nothing the user names may lead outside its folder; uploads are checked by content."""

from __future__ import annotations

import csv
import io
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

from .hdf5_guard import check_upload
from .report import SourceError

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
FITS_MAGIC = b"SIMPLE  ="
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
PARQUET_MAGIC = b"PAR1"
GZIP_MAGIC = b"\x1f\x8b"

EXTENSIONS = {
    ".h5": "hdf5",
    ".hdf5": "hdf5",
    ".hdf": "hdf5",
    ".fits": "fits",
    ".fit": "fits",
    ".fts": "fits",
    ".fz": "fits",
    ".fits.gz": "fits",
    ".fits.fz": "fits",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".png": "image",
    ".jpg": "image",
    ".jpeg": "image",
}
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


class UploadError(ValueError):
    """An upload that is refused (too big, unknown type, content not matching its name)."""


def extension(name: str) -> str:
    """The known (possibly double) extension of a file name, lowercase, or ''."""
    low = name.lower()
    for ext in sorted(EXTENSIONS, key=len, reverse=True):
        if low.endswith(ext):
            return ext
    return ""


def sanitize_filename(name: str) -> str:
    """A bare, safe file name: no directories, no leading dots, only [A-Za-z0-9._-]."""
    base = re.split(r"[\\/]", str(name))[-1]
    base = _SAFE_CHARS.sub("_", base).lstrip(".-")
    return base[:200] or "upload"


def sniff(head: bytes) -> str | None:
    """File kind from its first bytes: hdf5, fits, image, parquet, gzip, or None."""
    if head.startswith(HDF5_MAGIC):
        return "hdf5"
    if head.startswith(FITS_MAGIC):
        return "fits"
    if head.startswith(PNG_MAGIC) or head.startswith(JPEG_MAGIC):
        return "image"
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    return None


def _looks_like_csv(data: bytes) -> bool:
    sample = data[:65536]
    if len(data) > len(sample) and b"\n" in sample:
        sample = sample[: sample.rindex(b"\n")]
    if b"\x00" in sample:
        return False
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        return False
    lines = text.splitlines()
    return bool(lines) and "," in lines[0]


def _csv_has_keys(data: bytes) -> bool:
    from .catalog import DEC_NAMES, ID_NAMES, RA_NAMES

    header = next(csv.reader(io.StringIO(data[:65536].decode("utf-8", "replace"))), [])
    names = {h.strip().lower() for h in header}
    return bool(names & set(ID_NAMES)) or (bool(names & set(RA_NAMES)) and bool(names & set(DEC_NAMES)))


def validate_upload(name: str, data: bytes, max_bytes: int) -> tuple[str, str]:
    """Check an uploaded file's size, extension and magic bytes; return (safe file name, kind)."""
    if len(data) > max_bytes:
        raise UploadError(f"{sanitize_filename(name)}: {len(data)} bytes is over the {max_bytes}-byte limit")
    if not data:
        raise UploadError(f"{sanitize_filename(name)}: the file is empty")
    safe = sanitize_filename(name)
    ext = extension(safe)
    if not ext:
        raise UploadError(f"{safe}: unsupported file type (use {', '.join(sorted(set(EXTENSIONS)))})")
    kind = EXTENSIONS[ext]
    found = sniff(data[:16])
    ok = {
        "hdf5": found == "hdf5",
        "fits": found == "fits" or (ext == ".fits.gz" and found == "gzip"),
        "image": found == "image",
        "parquet": found == "parquet",
        "csv": found is None and _looks_like_csv(data),
    }[kind]
    if not ok:
        raise UploadError(f"{safe}: content does not look like a {kind.upper()} file")
    if kind == "hdf5":
        try:
            check_upload(data, safe)
        except SourceError as exc:
            raise UploadError(str(exc)) from None
    if kind == "csv" and not _csv_has_keys(data):
        raise UploadError(f"{safe}: a catalogue needs an object_id column or ra and dec columns")
    return safe, kind


def store_upload(folder: Path, safe_name: str, data: bytes) -> Path:
    """Write an upload into `folder` under a new name (`<8 hex>_<safe name>`), never over an earlier upload."""
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        target = folder / f"{uuid.uuid4().hex[:8]}_{safe_name}"
        try:
            with target.open("xb") as handle:
                handle.write(data)
            return target
        except FileExistsError:
            continue


def within(folder: Path, path: Path) -> bool:
    """Whether `path` (after resolving symlinks) lies inside `folder`."""
    try:
        path.resolve(strict=True).relative_to(folder.resolve(strict=True))
    except (ValueError, OSError):
        return False
    return True


def safe_children(folder: Path) -> Iterator[tuple[Path, bool]]:
    """Regular files directly in `folder`, sorted, each with whether it is safe (links must stay inside)."""
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        if entry.is_symlink():
            yield path, within(folder, path) and path.resolve().is_file()
        elif entry.is_file(follow_symlinks=False):
            yield path, True
