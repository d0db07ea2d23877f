"""CSV / Parquet catalogues: rows joined to atlas objects by id, or cross-matched on the sky."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from . import report as R
from .records import Record, Skip, SourceInfo

RA_NAMES = ("ra", "ra_deg", "raj2000", "target_ra", "plug_ra", "alpha")
DEC_NAMES = ("dec", "dec_deg", "dej2000", "decj2000", "target_dec", "plug_dec", "delta")
ID_NAMES = ("object_id",)
Z_NAMES = ("redshift", "z")
CHUNK_ROWS = 50_000


def position_id(ra: float, dec: float) -> str:
    """A deterministic id from a position (J-name style, 0.036 arcsec resolution)."""
    return f"J{ra:09.5f}{dec:+09.5f}"


def _find(columns: list[str], wanted: tuple[str, ...], explicit: str | None = None) -> str | None:
    if explicit:
        if explicit not in columns:
            raise R.SourceError(f"column {explicit!r} not in the catalogue (columns: {', '.join(columns[:20])})")
        return explicit
    lower = {c.lower(): c for c in columns}
    return next((lower[w] for w in wanted if w in lower), None)


class CatalogReader:
    """Streams a CSV or Parquet catalogue in chunks; each row becomes a label-only Record."""

    def __init__(self, path: Path, survey: str | None = None, *, id_column: str | None = None,
                 ra_column: str | None = None, dec_column: str | None = None) -> None:
        self.path = path
        self.parquet = path.suffix.lower() in (".parquet", ".pq")
        try:
            columns = pq.ParquetFile(path).schema_arrow.names if self.parquet else list(pd.read_csv(path, nrows=0).columns)
            self.total = pq.ParquetFile(path).metadata.num_rows if self.parquet else None
        except Exception as exc:
            raise R.SourceError(f"{path}: not a readable {'Parquet' if self.parquet else 'CSV'} file ({str(exc)[:160]})") from None
        self.id_col = _find(columns, ID_NAMES, id_column)
        self.ra_col = _find(columns, RA_NAMES, ra_column)
        self.dec_col = _find(columns, DEC_NAMES, dec_column)
        self.z_col = _find(columns, Z_NAMES)
        if self.id_col is None and (self.ra_col is None or self.dec_col is None):
            raise R.SourceError(f"{path}: the catalogue needs an id column (--id-column) or ra and dec columns")
        self.info = SourceInfo(kind="parquet" if self.parquet else "csv", survey=survey or "catalog", total=self.total)

    def _chunks(self) -> Iterator[pd.DataFrame]:
        if self.parquet:
            for batch in pq.ParquetFile(self.path).iter_batches(batch_size=CHUNK_ROWS):
                yield batch.to_pandas()
        else:
            yield from pd.read_csv(self.path, chunksize=CHUNK_ROWS)

    def __iter__(self) -> Iterator[Record | Skip]:
        used = {c for c in (self.id_col, self.ra_col, self.dec_col, self.z_col) if c}
        start = 0
        try:
            for frame in self._chunks():
                labels = [c for c in frame.columns if c not in used]
                for k, row in enumerate(frame.itertuples(index=False, name=None)):
                    yield self._record(dict(zip(frame.columns, row, strict=True)), labels, start + k)
                start += len(frame)
        except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
            yield Skip(f"{self.path.name}: after row {start}", R.CORRUPT_FILE, f"unreadable rest of file: {str(exc)[:160]}")

    def _record(self, row: dict[str, Any], labels: list[str], i: int) -> Record | Skip:
        where = f"{self.path.name}:row {i + 1}"
        try:
            ra = _coordinate(row.get(self.ra_col)) if self.ra_col else None
            dec = _coordinate(row.get(self.dec_col)) if self.dec_col else None
        except ValueError as exc:
            return Skip(where, R.BAD_POSITION, str(exc))
        if ra is None or dec is None:
            ra = dec = None
        oid = row.get(self.id_col) if self.id_col else None
        if isinstance(oid, str) and not oid.strip():
            oid = None  # a blank or whitespace-only id cell is no id
        if oid is None or (isinstance(oid, float) and np.isnan(oid)):
            if ra is None or dec is None:
                return Skip(where, R.NO_POSITION, "no id and no valid ra/dec")
            oid = position_id(ra, dec)
        rec = Record(object_id=_id_str(oid), where=where, ra=ra, dec=dec)
        if self.z_col:
            rec.redshift = _float(row.get(self.z_col))
        for name in labels:
            value = row[name]
            if isinstance(value, np.generic):
                value = value.item()
            if value is None or (isinstance(value, float) and np.isnan(value)):
                rec.labels[name] = None
            else:
                rec.labels[name] = value if isinstance(value, bool | int | float | str) else str(value)
        return rec


def _coordinate(value: Any) -> float | None:
    """A coordinate cell: None when empty, a float when numeric (range checked by the writer), else ValueError."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"coordinate {str(value)[:40]!r} is not a number in degrees") from None


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def _id_str(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
