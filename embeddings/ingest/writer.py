"""Validate, cross-match, resample and write records into the objects table in idempotent batches."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from backend import schema
from backend.imaging import thumbnail_png
from backend.spectra import desi_wavelength, resample_spectrum
from backend.store import Atlas, where_in, with_retry

from . import report as R
from .crossmatch import SkyMatcher
from .positions import position_problem
from .records import Record, Skip, SourceInfo, Spectrum

log = logging.getLogger(__name__)
CORE = set(schema.OBJECT_CORE.names)
_LABEL_RE = re.compile(r"[^a-z0-9_]+")
_LIST_F32 = pa.list_(pa.float32())
_TYPES = {f.name: f.type for f in schema.OBJECT_CORE}  # the core columns' types; labels are typed from their values


def label_name(name: str) -> str:
    """A safe label column name: lowercase letters, digits and '_'."""
    return _LABEL_RE.sub("_", str(name).strip().lower()).strip("_") or "col"


def split_for(object_id: str) -> str:
    """Deterministic train/val/test split (80/10/10) from a hash of the object id."""
    h = int.from_bytes(hashlib.blake2b(object_id.encode(), digest_size=4).digest(), "little") % 10
    return "test" if h == 0 else "val" if h == 1 else "train"


def _list_array(values: list[np.ndarray | None], dtype: pa.DataType) -> pa.Array:
    """Build a list array column-wise (fast for big pixel/spectrum arrays)."""
    inner = np.float32 if dtype == _LIST_F32 else np.int32
    lengths = np.array([0 if v is None else v.size for v in values], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32 if lengths.sum() < 2**31 else np.int64)
    flat = [np.asarray(v, inner).ravel() for v in values if v is not None]
    data = np.concatenate(flat) if flat else np.array([], inner)
    mask = pa.array([v is None for v in values])
    if offsets.dtype == np.int64:
        arr = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(data), mask=mask)
        return arr.cast(pa.list_(dtype.value_type))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(data), mask=mask)


def _label_array(values: list[Any]) -> pa.Array:
    """A label column; values of mixed types (numbers and text in one column) become text."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows sharing one key set -> an arrow table with the core columns typed as the schema says."""
    names, arrays = [], []
    for name in rows[0]:
        values = [r[name] for r in rows]
        kind = _TYPES.get(name)
        if kind is None and all(v is None for v in values):
            continue  # no type to give an all-missing label column
        names.append(name)
        if kind in (_LIST_F32, pa.list_(pa.int32())):
            arrays.append(_list_array(values, kind))
        else:
            arrays.append(pa.array(values, type=kind) if kind is not None else _label_array(values))
    return pa.Table.from_arrays(arrays, names=names)


def conform_labels(table: pa.Table, stored: pa.Schema | None) -> tuple[pa.Table, dict[str, str]]:
    """Cast label columns to the types the atlas stores when that loses nothing; drop the others.

    Returns the table to write and, per dropped column, why (e.g. text in a column stored as float).
    """
    if stored is None:
        return table, {}
    dropped: dict[str, str] = {}
    for name in table.column_names:
        if name in _TYPES or name not in stored.names:
            continue
        col, want = table.column(name), stored.field(name).type
        if col.type == want or pa.types.is_null(col.type):
            continue
        try:
            cast = pc.cast(col, want, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            example = next((v for v in col.to_pylist() if v is not None), None)
            dropped[name] = f"stored as {want}, source has {col.type} values like {str(example)[:40]!r}"
            table = table.drop_columns([name])
            continue
        table = table.set_column(table.column_names.index(name), name, cast)
    return table, dropped


class ObjectWriter:
    """Collects records, and per batch: cross-matches, dedupes, validates, resamples and upserts them."""

    def __init__(
        self,
        atlas: Atlas,
        info: SourceInfo,
        report: R.IngestReport,
        *,
        source_name: str,
        match_radius: float | None = None,
        unmatched: str = "add",
        batch_rows: int = 256,
        batch_bytes: int = 24 * 2**20,
        on_written: Callable[[int], None] | None = None,
        update_positions: bool = False,
    ) -> None:
        if unmatched not in ("add", "skip"):
            raise R.SourceError(f"unmatched must be 'add' or 'skip', not {unmatched!r}")
        self.atlas, self.info, self.report = atlas, info, report
        self.source_name = source_name
        self.unmatched = unmatched
        self.update_positions = update_positions  # existing objects keep their ra/dec unless asked
        self.batch_rows, self.batch_bytes = batch_rows, batch_bytes
        self.pending_bytes = 0
        self.pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1))
        self.write_pool = ThreadPoolExecutor(max_workers=1)  # one batch is written while the next one is prepared
        self._inflight: Future | None = None
        self.on_written = on_written
        self.matcher = SkyMatcher(atlas, match_radius) if match_radius else None
        self.seen: dict[str, str] = {}
        self.pending: list[Record] = []
        self.surveys = atlas.surveys()
        self._register_source_survey()

    # ----------------------------------------------------------------- survey metadata
    def _register_source_survey(self) -> None:
        info, entry = self.info, self.surveys.get(self.info.survey, {})
        updates: dict[str, Any] = {}
        if info.bands and "bands" not in entry:
            updates["bands"] = info.bands
        if info.pixel_scale and "pixel_scale" not in entry:
            updates["pixel_scale"] = info.pixel_scale
        if info.wavelength is not None and "wavelength" not in entry:
            updates["wavelength"] = info.wavelength
        if updates or info.survey not in self.surveys:
            self.atlas.register_survey(info.survey, description=info.description, **updates)
            self.surveys = self.atlas.surveys()

    def _survey_entry(self, survey: str, **updates: Any) -> dict:
        entry = self.surveys.get(survey, {})
        missing = {k: v for k, v in updates.items() if v is not None and k not in entry}
        if missing:
            self.atlas.register_survey(survey, **missing)
            self.surveys = self.atlas.surveys()
        return self.surveys.get(survey, {})

    # ----------------------------------------------------------------- public
    def add(self, item: Record | Skip) -> None:
        """Queue one record (or record one skip); writes a batch when enough are queued."""
        if isinstance(item, Skip):
            self.report.skip(item.where, item.reason, item.detail)
            return
        if not str(item.object_id).strip():
            self.report.skip(item.where, R.MISSING_ID, "empty or whitespace-only object id")
            return
        problem = position_problem(item.ra, item.dec)
        if problem:
            self.report.skip(item.where, R.BAD_POSITION, problem)
            return
        if item.ra == 360.0:
            item.ra = 0.0
        self.pending.append(item)
        self.pending_bytes += _nbytes(item)
        if len(self.pending) >= self.batch_rows or self.pending_bytes >= self.batch_bytes:
            self.flush()

    def flush(self) -> None:
        """Resolve, validate and write the queued records in one batch."""
        records, self.pending, self.pending_bytes = self.pending, [], 0
        if not records:
            return
        existing = self._existing([r.object_id for r in records])
        ids = [r.object_id for r in records]
        todo = [k for k, r in enumerate(records) if r.object_id not in existing]
        if self.matcher is not None and todo:
            for k, hit in zip(todo, self._match([records[k] for k in todo]), strict=True):
                if hit is not None:
                    ids[k], existing[hit[0]] = hit[0], hit[1]
        rows: list[dict[str, Any]] = []
        for rec, oid in zip(records, ids, strict=True):
            if oid in self.seen:
                first = self.seen[oid]
                what = f"same object as {first}" if oid == rec.object_id else f"matches {oid}, already matched by {first}"
                self.report.skip(rec.where, R.DUPLICATE_ID, f"duplicate id {oid!r}: {what}")
                continue
            if oid not in existing and self.unmatched == "skip":
                self.report.skip(rec.where, R.UNMATCHED, "no atlas object with this id or within the match radius")
                continue
            survey = existing.get(oid) or self.info.survey
            row = self._row(rec, oid, survey, is_new=oid not in existing)
            if row is None:
                continue
            self.seen[oid] = rec.where
            rows.append(row)
        self._thumbnails(rows)
        self._wait()
        self._inflight = self.write_pool.submit(self._write, rows, existing)

    def _wait(self) -> None:
        """Wait for the batch being written, then count it (errors surface here, in the caller's thread)."""
        if self._inflight is None:
            return
        future, self._inflight = self._inflight, None
        added, updated = future.result()
        self.report.added += added
        self.report.updated += updated
        if self.on_written:
            self.on_written(added + updated)

    def close(self) -> None:
        """Write what is left and compact the objects table."""
        self.flush()
        self._wait()
        self.pool.shutdown()
        self.write_pool.shutdown()
        if self.report.added or self.report.updated:
            self._compact()
            self.atlas.optimize(schema.OBJECTS)

    def _compact(self) -> None:
        """Merge the batch fragments by copying encoded pages in small batches (bounded memory for pixel columns)."""
        dataset = self.atlas.table(schema.OBJECTS).to_lance()
        try:
            with_retry(lambda: dataset.optimize.compact_files(batch_size=16, num_threads=1,
                                                              compaction_mode="try_binary_copy"), "compact objects")
        except Exception as exc:  # older Lance without binary copy: Atlas.optimize compacts the usual way
            log.info("binary-copy compaction unavailable (%s); using the default", exc)

    # ----------------------------------------------------------------- steps
    def _match(self, records: list[Record]) -> list[tuple[str, str] | None]:
        if self.matcher is None:
            return [None] * len(records)
        ra = np.array([np.nan if r.ra is None else r.ra for r in records], float)
        dec = np.array([np.nan if r.dec is None else r.dec for r in records], float)
        return self.matcher.match(ra, dec)

    def _existing(self, ids: list[str]) -> dict[str, str]:
        if not self.atlas.has_table(schema.OBJECTS):
            return {}
        uniq = list(dict.fromkeys(ids))
        frame = self.atlas.objects(["object_id", "survey"], where=where_in("object_id", uniq))
        return {str(o): (s if isinstance(s, str) else "") for o, s in zip(frame["object_id"], frame["survey"], strict=True)}

    def _row(self, rec: Record, oid: str, survey: str, *, is_new: bool) -> dict[str, Any] | None:
        row: dict[str, Any] = {"object_id": oid}
        if is_new:
            row.update(survey=survey, split=split_for(oid), source=self.source_name)
        if is_new or (self.update_positions and rec.ra is not None):
            row.update(ra=_num(rec.ra), dec=_num(rec.dec))
        if rec.redshift is not None and np.isfinite(rec.redshift):
            row["redshift"] = float(rec.redshift)
        if rec.image is not None and not self._image(rec, rec.image, survey, row):
            return None
        if rec.spectrum is not None and not self._spectrum(rec, rec.spectrum, survey, row):
            return None
        for key, value in rec.labels.items():
            name = label_name(key)
            if name not in CORE and name not in row:
                row[name] = value
        return row

    def _image(self, rec: Record, image: np.ndarray, survey: str, row: dict[str, Any]) -> bool:
        img = np.asarray(image, dtype=np.float32)
        if img.ndim == 2:
            img = img[None]
        bands = list(rec.bands or self.info.bands or [])
        if img.ndim != 3 or img.shape[0] != len(bands) or min(img.shape[1:]) < 2:
            self.report.skip(rec.where, R.WRONG_SHAPE, f"image shape {tuple(np.shape(image))} is not bands x H x W for bands {bands}")
            return False
        entry = self._survey_entry(survey, bands=bands, pixel_scale=self.info.pixel_scale, image_shape=list(img.shape))
        want = entry.get("bands", bands)
        if bands != want:
            lacking = [b for b in want if b not in bands]
            if lacking:
                self.report.skip(rec.where, R.MISSING_BANDS, f"missing band(s) {','.join(lacking)} (survey {survey} has {','.join(want)})")
                return False
            img = img[[bands.index(b) for b in want]]
        if list(img.shape) != list(entry.get("image_shape", img.shape)):
            self.report.skip(rec.where, R.WRONG_SHAPE, f"image shape {list(img.shape)}, survey {survey} holds {entry['image_shape']}")
            return False
        if not np.isfinite(img).all():
            bad = int((~np.isfinite(img)).sum())
            self.report.skip(rec.where, R.NON_FINITE, f"{bad} NaN/inf pixel(s)")
            return False
        row["image"] = img
        row["image_shape"] = np.array(img.shape, np.int32)
        row["thumbnail"] = rec.thumbnail if rec.thumbnail is not None else _Pending(want)
        return True

    def _spectrum(self, rec: Record, spec: Spectrum, survey: str, row: dict[str, Any]) -> bool:
        flux = np.asarray(spec.flux, dtype=np.float64).squeeze()
        ivar = None if spec.ivar is None else np.asarray(spec.ivar, dtype=np.float64).squeeze()
        wave = self.info.wavelength if spec.wave is None else np.asarray(spec.wave, dtype=np.float64).squeeze()
        if wave is None or flux.ndim != 1 or wave.shape != flux.shape or (ivar is not None and ivar.shape != flux.shape):
            shapes = f"flux {np.shape(spec.flux)}, ivar {None if spec.ivar is None else np.shape(spec.ivar)}, grid {None if wave is None else wave.shape}"
            self.report.skip(rec.where, R.WRONG_SHAPE, f"spectrum shapes disagree: {shapes}")
            return False
        good = np.ones(flux.shape, bool) if ivar is None else (ivar > 0) & np.isfinite(ivar)
        if not np.isfinite(flux[good]).all():
            self.report.skip(rec.where, R.NON_FINITE, f"{int((~np.isfinite(flux[good])).sum())} NaN/inf flux value(s) in unmasked pixels")
            return False
        if not good.any() or not np.any(flux[good] != 0):
            self.report.skip(rec.where, R.ALL_ZERO, "spectrum is all zeros (or every pixel masked)")
            return False
        if not np.all(np.diff(wave) > 0):
            self.report.skip(rec.where, R.MISMATCHED_GRID, "wavelengths do not increase monotonically")
            return False
        entry = self._survey_entry(survey, wavelength=desi_wavelength())
        grid = np.asarray(entry["wavelength"], dtype=np.float64)
        if wave.shape == grid.shape and np.allclose(wave, grid, rtol=0, atol=1e-2):
            out_flux = np.where(good, flux, 0.0).astype(np.float32)
            out_ivar = None if ivar is None else np.where(good, ivar, 0.0).astype(np.float32)
        else:
            if wave[-1] <= grid[0] or wave[0] >= grid[-1]:
                self.report.skip(rec.where, R.MISMATCHED_GRID, f"{wave[0]:.0f}-{wave[-1]:.0f} A does not overlap the atlas grid {grid[0]:.0f}-{grid[-1]:.0f} A")
                return False
            out_flux, out_ivar = resample_spectrum(wave, flux, ivar, grid)
        row["spectrum_flux"] = out_flux
        row["spectrum_ivar"] = out_ivar
        return True

    def _thumbnails(self, rows: list[dict[str, Any]]) -> None:
        """Render pending thumbnails in a thread pool (PIL and numpy release the GIL)."""
        todo = [r for r in rows if isinstance(r.get("thumbnail"), _Pending)]
        pngs = self.pool.map(lambda r: thumbnail_png(r["image"], r["thumbnail"].bands), todo)
        for row, png in zip(todo, pngs, strict=True):
            row["thumbnail"] = png

    def _write(self, rows: list[dict[str, Any]], existing: dict[str, str]) -> tuple[int, int]:
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:
            groups.setdefault(tuple(row), []).append(row)
        stored = self.atlas.table(schema.OBJECTS).schema if self.atlas.has_table(schema.OBJECTS) else None
        for group in groups.values():
            table, dropped = conform_labels(rows_to_table(group), stored)
            for name, why in dropped.items():
                self.report.drop_column(name, R.TYPE_MISMATCH, why, len(group))
            self.atlas.upsert(schema.OBJECTS, table, batch_rows=max(len(group), 1))
        n_upd = sum(1 for r in rows if r["object_id"] in existing)
        return len(rows) - n_upd, n_upd


class _Pending:
    """A thumbnail still to render, with the band order of its image."""

    def __init__(self, bands: list[str]) -> None:
        self.bands = bands


def _nbytes(rec: Record) -> int:
    size = 0 if rec.image is None else np.asarray(rec.image).nbytes
    return size + (0 if rec.spectrum is None else 3 * np.asarray(rec.spectrum.flux).nbytes)


def _num(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)
