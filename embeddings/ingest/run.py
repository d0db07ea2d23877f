"""`run_ingest`: detect a source's format, stream it through the writer, store and return the report."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from backend.store import open_atlas

from . import report as R
from .catalog import CatalogReader
from .files import FilesReader
from .hdf5 import Hdf5Reader
from .safety import EXTENSIONS, extension, sniff
from .writer import ObjectWriter

REPORT_EVERY_S = 10.0  # how often a running ingest refreshes its stored report
KINDS = ("hdf5", "fits", "images", "spectra", "folder", "catalog")


def detect_kind(path: Path) -> str:
    """The reader family for a path: hdf5, folder, fits, images or catalog (by content, then extension)."""
    if not path.exists():
        raise R.SourceError(f"{path}: no such file or folder")
    if path.is_dir():
        return "folder"
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise R.SourceError(f"{path}: cannot be read ({exc.strerror})") from None
    found = sniff(head)
    by_ext = EXTENSIONS.get(extension(path.name))
    if found == "hdf5":
        return "hdf5"
    if found == "fits" or (found == "gzip" and by_ext == "fits"):
        return "fits"
    if found == "image":
        return "images"
    if found == "parquet" or by_ext == "csv":
        return "catalog"
    if by_ext in ("hdf5", "fits", "image", "parquet"):
        raise R.SourceError(f"{path}: named like {by_ext.upper()} but its content is not (corrupt or truncated file?)")
    raise R.SourceError(f"{path}: unsupported file type (HDF5, FITS, PNG/JPEG, CSV or Parquet expected)")


def _bands(value: Any) -> list[str] | None:
    if value is None or value == "":
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(b).strip().lower() for b in items if str(b).strip()]


def make_reader(path: Path, kind: str, survey: str | None, options: dict[str, Any]) -> Any:
    """The reader for a source of a known kind."""
    bands = _bands(options.get("bands"))
    if kind == "hdf5":
        return Hdf5Reader(path, survey, bands=bands, labels=options.get("labels", True))
    if kind in ("fits", "images", "spectra", "folder"):
        return FilesReader(path, survey, bands=bands, pixel_scale=options.get("pixel_scale"), strict=path.is_file())
    if kind == "catalog":
        return CatalogReader(path, survey, id_column=options.get("id_column"),
                             ra_column=options.get("ra_column"), dec_column=options.get("dec_column"))
    raise R.SourceError(f"unknown kind {kind!r} (use one of {', '.join(KINDS)})")


def run_ingest(
    source: str | Path,
    atlas_uri: str,
    *,
    kind: str | None = None,
    survey: str | None = None,
    progress: bool = True,
    **options: Any,
) -> R.IngestReport:
    """Ingest a file or folder into the atlas (created if absent); returns and stores the report.

    Options: match_radius (arcsec; cross-match onto existing objects), unmatched ('add'|'skip'),
    update_positions (overwrite ra/dec of existing objects; default keeps them), bands,
    pixel_scale, id_column, ra_column, dec_column, labels, batch_rows, on_progress(fraction, message), cancelled().
    """
    started = time.perf_counter()
    path = Path(source).expanduser()
    kind = kind or detect_kind(path)
    if not path.exists():
        raise R.SourceError(f"{path}: no such file or folder")
    reader = make_reader(path, kind, survey, options)
    info = reader.info
    if kind == "catalog" and options.get("match_radius") is None and reader.id_col is None:
        options["match_radius"] = 1.0  # catalogues without ids are cross-matched on the sky by default
    atlas = open_atlas(atlas_uri, create=True)
    atlas.verify()  # a damaged atlas stops here, before anything is written
    report = R.IngestReport(source=str(path), kind=info.kind, survey=info.survey)
    report.dropped_columns.update(info.notes)  # values the source itself lacks (e.g. AstroCLIP redshifts)
    report.save(atlas)  # a killed ingest still leaves its report, with status "running"
    on_progress: Callable[[float, str], None] | None = options.get("on_progress")
    cancelled: Callable[[], bool] | None = options.get("cancelled")
    bar = tqdm(total=info.total, disable=not progress, unit="obj", desc=f"ingest {path.name}")
    seen = 0
    last_save = time.monotonic()

    def written(_: int) -> None:
        nonlocal last_save
        if on_progress:
            frac = min(1.0, seen / info.total) if info.total else 0.0
            on_progress(frac, f"{report.added} added, {report.updated} updated, {report.skipped} skipped")
        if time.monotonic() - last_save > REPORT_EVERY_S:
            report.save(atlas)
            last_save = time.monotonic()

    writer = ObjectWriter(
        atlas, info, report, source_name=path.name, match_radius=options.get("match_radius"),
        unmatched=options.get("unmatched", "add"), on_written=written,
        update_positions=bool(options.get("update_positions", False)),
        batch_rows=int(options.get("batch_rows", 5000 if kind == "catalog" else 256)),
    )
    try:
        for item in reader:
            if cancelled is not None and cancelled():
                report.cancelled = True
                break
            writer.add(item)
            seen += 1
            bar.update(1)
        writer.close()
    except BaseException as exc:
        report.status, report.error = "failed", f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        report.elapsed_s = round(time.perf_counter() - started, 3)
        report.save(atlas)
        raise
    finally:
        bar.close()
    report.status = "cancelled" if report.cancelled else "done"
    report.elapsed_s = round(time.perf_counter() - started, 3)
    report.save(atlas)
    return report
