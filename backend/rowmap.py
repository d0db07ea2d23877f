"""Row maps: object ids -> row offsets of the objects table and of each vectors table, cached per table version.

At a million objects a lookup through SQL (`object_id IN (...)`) costs tens of milliseconds, and an exact scan of
a few thousand filtered vectors fetched by id over a second. With the offsets in memory (sorted ids as bytes plus
int64 offsets: ~30 MB per million objects) a lookup is a binary search and the read is one projected Lance
`take`. The objects map also keeps the columns the structured filters use (redshift, survey) and the positions
(ra, dec), so a redshift range or a survey is a numpy mask and a same-source check reads no rows. Every map is rebuilt when its table's version changes.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from backend import schema
from backend.store import Atlas, AtlasError

_lock = threading.Lock()
_objects: dict[str, ObjectRows] = {}
_vectors: dict[tuple[str, str], VectorRows] = {}
_masks: dict[tuple[str, int, str], np.ndarray] = {}
_filtered: dict[tuple[str, str, int, str], tuple[np.ndarray, np.ndarray]] = {}
MASK_CACHE = 8  # SQL filter masks kept per process (one bool per object each)
SCAN_BATCH_ROWS = 65_536  # vectors per batch of an exact search by scan (32 MB of 128-d vectors)
FILTERED_CACHE_BYTES = 256 * 2**20  # filtered vector subsets kept per process (a user clicking around one filter)


def _id_bytes(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Object ids as a numpy bytes array (UTF-8), sortable and searchable without Python strings."""
    return np.asarray(pc.cast(column, pa.binary()).to_numpy(zero_copy_only=False), dtype=np.bytes_)


def vector_matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A fixed-size-list vector column as a float32 matrix."""
    flat = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return flat.flatten().to_numpy(zero_copy_only=False).reshape(len(flat), flat.type.list_size).astype(np.float32, copy=False)


def _encode(ids: Iterable[str]) -> np.ndarray:
    return np.asarray([str(i).encode() for i in ids], dtype=np.bytes_)


@dataclass(frozen=True)
class ObjectRows:
    """The objects table at one version: ids -> offsets, and the structured filter columns by offset."""

    version: int
    n: int
    sorted_ids: np.ndarray  # bytes, ascending
    sorted_rows: np.ndarray  # int64 offsets in the order of sorted_ids
    columns: tuple[str, ...]  # the table's column names at this version
    redshift: np.ndarray | None  # float64 by offset (NaN where null); None when the table has no redshift
    ra: np.ndarray  # float64 by offset (NaN where null): same-source checks without reading rows
    dec: np.ndarray
    survey: pd.Categorical | None  # by offset; None when the table has no survey column
    z_masks: dict[tuple[float, float], np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    def offsets(self, object_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Offsets of the given ids in the objects table (-1 where an id is not there)."""
        return _lookup(self.sorted_ids, self.sorted_rows, object_ids)

    def z_mask(self, lo: float, hi: float) -> np.ndarray:
        """Rows with lo <= redshift <= hi (AtlasError when the table has no redshift column); the last MASK_CACHE
        ranges are kept, since a user clicking from galaxy to galaxy keeps one range (1 ms a mask at 1M rows)."""
        if self.redshift is None:
            raise AtlasError("bad filter: the objects table has no redshift column")
        key = (float(lo), float(hi))
        mask = self.z_masks.get(key)
        if mask is None:
            with np.errstate(invalid="ignore"):
                mask = (self.redshift >= lo) & (self.redshift <= hi)
            mask.flags.writeable = False
            with _lock:
                while len(self.z_masks) >= MASK_CACHE:
                    self.z_masks.pop(next(iter(self.z_masks)), None)
                self.z_masks[key] = mask
        return mask

    def survey_mask(self, surveys: Sequence[str]) -> np.ndarray:
        """Rows whose survey is one of `surveys`."""
        if self.survey is None:
            raise AtlasError("bad filter: the objects table has no survey column")
        codes = [self.survey.categories.get_loc(s) for s in surveys if s in self.survey.categories]
        return np.isin(self.survey.codes, codes)

    def ids_mask(self, object_ids: Iterable[str]) -> np.ndarray:
        """Rows whose id is in `object_ids`."""
        mask = np.zeros(self.n, bool)
        off = self.offsets(list(object_ids))
        mask[off[off >= 0]] = True
        return mask


@dataclass(frozen=True)
class VectorRows:
    """One vectors table at one version: for each objects offset the offset of its vector (-1: none), and back."""

    version: int
    objects_version: int
    by_object: np.ndarray  # int64, one entry per objects row
    object_of: np.ndarray  # int64, the objects offset of each vector row (-1: no such object)
    sorted_row_ids: np.ndarray  # uint64, Lance's _rowid of each vector row, sorted
    row_order: np.ndarray  # int64, the vector offset of each sorted row id
    object_ids: np.ndarray  # bytes, the object id of each vector row: a take of vectors need not read the ids

    def ids_at(self, offsets: np.ndarray) -> np.ndarray:
        """The object ids (str, as an object array) of the vector rows at `offsets`."""
        return np.char.decode(self.object_ids[np.asarray(offsets, np.int64)], "utf-8").astype(object)

    def offsets_of_row_ids(self, row_ids: np.ndarray) -> np.ndarray:
        """Vector offsets of Lance row ids (as an index query returns them; -1 for an id not in this version)."""
        row_ids = np.asarray(row_ids, np.uint64)
        if not len(self.sorted_row_ids) or not len(row_ids):
            return np.full(len(row_ids), -1, np.int64)
        pos = np.minimum(np.searchsorted(self.sorted_row_ids, row_ids), len(self.sorted_row_ids) - 1)
        return np.where(self.sorted_row_ids[pos] == row_ids, self.row_order[pos], -1)


def _lookup(sorted_ids: np.ndarray, sorted_rows: np.ndarray, object_ids: Sequence[str] | np.ndarray) -> np.ndarray:
    keys = object_ids if isinstance(object_ids, np.ndarray) and object_ids.dtype.kind == "S" else _encode(object_ids)
    if not len(sorted_ids) or not len(keys):
        return np.full(len(keys), -1, np.int64)
    pos = np.minimum(np.searchsorted(sorted_ids, keys), len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == keys, sorted_rows[pos], -1).astype(np.int64)


def take_rows(ds: Any, offsets: np.ndarray, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows of a Lance dataset at row offsets (>= 0; any order, repeats allowed), in that order, in one projected
    `take` of the distinct sorted offsets; all columns when `columns` is None."""
    unique, back = np.unique(np.asarray(offsets, np.int64), return_inverse=True)
    cols = None if columns is None else list(columns)
    if not len(unique):
        return pd.DataFrame(columns=cols if cols is not None else ds.schema.names)
    return ds.take(unique, columns=cols).to_pandas().iloc[back].reset_index(drop=True)


def objects_dataset(atlas: Atlas) -> Any:
    """The objects table as a Lance dataset at its current version (offsets of the maps refer to it)."""
    return atlas.table(schema.OBJECTS).to_lance()


def object_rows(atlas: Atlas, ds: Any | None = None) -> ObjectRows:
    """The objects map for the dataset `ds` (default: the current version), built once per version."""
    ds = ds if ds is not None else objects_dataset(atlas)
    hit = _objects.get(atlas.uri)
    if hit is not None and hit.version == ds.version:
        return hit
    with _lock:
        hit = _objects.get(atlas.uri)
        if hit is not None and hit.version == ds.version:
            return hit
        names = tuple(ds.schema.names)
        read = [c for c in ("object_id", "redshift", "survey", "ra", "dec") if c in names]
        table = ds.to_table(columns=read)
        ids = _id_bytes(table.column("object_id"))
        order = np.argsort(ids, kind="stable")
        floats = {c: _floats(table, c) for c in ("redshift", "ra", "dec")}
        survey = pd.Categorical(table.column("survey").to_pandas()) if "survey" in read else None
        rows = ObjectRows(ds.version, len(ids), ids[order], order.astype(np.int64), names, redshift=floats["redshift"],
                          ra=_nan_if_none(floats["ra"], len(ids)), dec=_nan_if_none(floats["dec"], len(ids)), survey=survey)
        _objects[atlas.uri] = rows
        return rows


def _floats(table: pa.Table, column: str) -> np.ndarray | None:
    if column not in table.column_names:
        return None
    return np.asarray(table.column(column).cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64)


def _nan_if_none(values: np.ndarray | None, n: int) -> np.ndarray:
    return values if values is not None else np.full(n, np.nan)


def vector_rows(atlas: Atlas, table: str, ds: Any, objects: ObjectRows) -> VectorRows:
    """The map of a vectors table (Lance dataset `ds`) onto the objects map, built once per pair of versions."""
    key = (atlas.uri, table)
    hit = _vectors.get(key)
    if hit is not None and hit.version == ds.version and hit.objects_version == objects.version:
        return hit
    with _lock:
        hit = _vectors.get(key)
        if hit is not None and hit.version == ds.version and hit.objects_version == objects.version:
            return hit
        table_ids = ds.to_table(columns=["object_id"], with_row_id=True)
        ids = _id_bytes(table_ids.column("object_id"))
        off = objects.offsets(ids)
        by_object = np.full(objects.n, -1, np.int64)
        ok = off >= 0
        by_object[off[ok]] = np.flatnonzero(ok)
        row_ids = table_ids.column("_rowid").to_numpy().astype(np.uint64, copy=False)
        order = np.argsort(row_ids, kind="stable").astype(np.int64)
        rows = VectorRows(ds.version, objects.version, by_object, off, row_ids[order], order, ids)
        _vectors[key] = rows
        return rows


def where_mask(atlas: Atlas, ds: Any, objects: ObjectRows, where: str) -> np.ndarray:
    """Objects rows matching a SQL condition (read once per objects version and condition; bad SQL: AtlasError)."""
    key = (atlas.uri, objects.version, where)
    hit = _masks.get(key)
    if hit is not None:
        return hit
    try:
        ids = ds.to_table(columns=["object_id"], filter=where).column("object_id")
    except Exception as exc:  # lance reports bad SQL as ValueError/RuntimeError
        raise AtlasError(f"bad filter {where!r}: {exc}") from exc
    mask = np.zeros(objects.n, bool)
    off = objects.offsets(_id_bytes(ids))
    mask[off[off >= 0]] = True
    with _lock:
        while len(_masks) >= MASK_CACHE:
            _masks.pop(next(iter(_masks)))
        _masks[key] = mask
    return mask


def filtered_vectors(atlas: Atlas, table: str, ds: Any, vectors: VectorRows, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Object ids (from the map `vectors`) and vectors of a vectors table (Lance dataset `ds`) at the sorted offsets
    `rows`, read in one take of the vector column and kept (up to FILTERED_CACHE_BYTES in all) for the next search
    under the same filter."""
    key = (atlas.uri, table, ds.version, hashlib.sha1(np.ascontiguousarray(rows, np.int64).tobytes()).hexdigest())
    hit = _filtered.get(key)
    if hit is not None:
        return hit
    if not len(rows):
        return np.zeros(0, object), np.zeros((0, 0), np.float32)
    mat = vector_matrix(ds.take(rows, columns=["vector"]).column("vector"))
    found = vectors.ids_at(rows), mat
    with _lock:
        while _filtered and sum(m.nbytes for _, m in _filtered.values()) + mat.nbytes > FILTERED_CACHE_BYTES:
            _filtered.pop(next(iter(_filtered)))
        if mat.nbytes <= FILTERED_CACHE_BYTES:
            _filtered[key] = found
    return found


def nearest_rows_by_scan(ds: Any, vector: np.ndarray, rows: np.ndarray, fetch: int, metric: str) -> np.ndarray:
    """Offsets of the `fetch` vectors among the sorted offsets `rows` nearest to a unit vector, from one in-order
    scan of the vector column (nothing kept but the running best): cheaper than a take when `rows` is most of it."""
    best_rows, best_dist = np.zeros(0, np.int64), np.zeros(0, np.float64)
    start = 0
    for batch in ds.to_batches(columns=["vector"], batch_size=SCAN_BATCH_ROWS, scan_in_order=True):
        stop = start + batch.num_rows
        lo, hi = np.searchsorted(rows, [start, stop])
        if hi > lo:
            mat = vector_matrix(batch.column(0))[rows[lo:hi] - start]
            dist = distances(mat, vector, metric)
            best_rows = np.concatenate([best_rows, rows[lo:hi]])
            best_dist = np.concatenate([best_dist, dist])
            if len(best_dist) > fetch:
                keep = np.argpartition(best_dist, fetch)[:fetch]
                best_rows, best_dist = best_rows[keep], best_dist[keep]
        start = stop
    return np.sort(best_rows)


def distances(mat: np.ndarray, vector: np.ndarray, metric: str) -> np.ndarray:
    """Distances of rows of `mat` to a unit vector as the index metric reports them (l2: squared, |q| = 1)."""
    dot = mat @ vector
    if metric == "cosine":
        return 1.0 - dot / np.maximum(np.linalg.norm(mat, axis=1), 1e-12)
    if metric == "dot":
        return 1.0 - dot
    return np.einsum("ij,ij->i", mat, mat) - 2.0 * dot + 1.0
