"""The atlas store: one LanceDB database per atlas, with retrying, idempotent writes."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("LANCEDB_LOG", "error")  # Lance's 'no existing dataset, will be created' notices are noise

import lancedb  # noqa: E402
import numpy as np
import pandas as pd
import pyarrow as pa

from backend import schema
from backend.config import default_atlas_uri, is_remote, storage_options

log = logging.getLogger(__name__)
T = TypeVar("T")

WRITE_BATCH_ROWS = 2_000
SURVEY_PREFIX = "survey:"  # metadata rows survey:["<survey>", "<field>"]
_RETRY_ATTEMPTS = 30  # with the 2 s cap: up to ~50 s of backoff before a writer gives up (a loaded box)


class AtlasError(RuntimeError):
    """A problem with an atlas that the user can act on (the message says how)."""


class AtlasNotFoundError(AtlasError):
    """No atlas exists at the given URI."""


class SchemaVersionError(AtlasError):
    """The atlas was written with another schema version than this code reads."""


class MixedSpaceError(AtlasError):
    """A write would mix vectors from different encoders/weights/preprocessing in one space."""


def utcnow() -> datetime:
    """Timezone-aware now, the timestamp type every atlas table uses."""
    return datetime.now(UTC)


def _is_conflict(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(s in text for s in ("conflict", "retryable", "concurrent", "was written by another"))


def with_retry(action: Callable[[], T], what: str) -> T:
    """Run a write, retrying LanceDB commit conflicts from concurrent writers with backoff."""
    for attempt in range(_RETRY_ATTEMPTS):
        try:
            return action()
        except Exception as exc:  # lancedb raises plain RuntimeError/OSError for conflicts
            if not _is_conflict(exc) or attempt == _RETRY_ATTEMPTS - 1:
                raise
            delay = min(2.0, 0.02 * 2**attempt) * (0.5 + random.random())
            log.debug("commit conflict on %s (attempt %d), retrying in %.2fs", what, attempt + 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _to_arrow(data: pa.Table | pd.DataFrame | list[dict], schema_hint: pa.Schema | None = None) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    if schema_hint is not None:
        names = [f.name for f in schema_hint]
        fields = [schema_hint.field(n) for n in names if any(n in row for row in data)]
        return pa.Table.from_pylist(data, schema=pa.schema(fields))
    return pa.Table.from_pylist(data)


class Atlas:
    """One atlas: a LanceDB database holding objects, vectors, maps, tags, jobs and probes."""

    def __init__(self, uri: str | Path | None = None, *, create: bool = False) -> None:
        self.uri = str(uri or default_atlas_uri()).rstrip("/")
        self.remote = is_remote(self.uri)
        try:
            if not self.remote:
                self._check_folder(Path(self.uri), create)
            self.db = lancedb.connect(self.uri, read_consistency_interval=timedelta(0), storage_options=storage_options(self.uri))
            if not self._exists(schema.META):
                if not create:
                    raise AtlasNotFoundError(
                        f"{self.uri} is not an Arp atlas (no {schema.META} table): build one with "
                        f"`python -m embeddings demo --atlas {self.uri}`"
                    )
                self._initialise()
            self._check_version()
        except AtlasError:
            raise
        except Exception as exc:  # lance/object-store errors (missing _versions, bad credentials), unusable paths
            raise AtlasError(f"atlas {self.uri} cannot be opened ({_one_line(exc)})") from None

    # ----------------------------------------------------------------- set-up
    def _check_folder(self, path: Path, create: bool) -> None:
        """A local atlas is a folder of `*.lance` tables; refuse files and folders holding anything else."""
        if path.exists() and not path.is_dir():
            raise AtlasError(f"{path} is a file, not an atlas folder")
        if not path.is_dir():
            if not create:
                raise AtlasNotFoundError(
                    f"no atlas at {path}: build the demo with `python -m embeddings demo --atlas {path}` "
                    "or ingest data with `python -m embeddings ingest SOURCE --atlas DIR`"
                )
            path.mkdir(parents=True)
            return
        if create and not (path / f"{schema.META}.lance").is_dir():
            foreign = sorted(p.name for p in path.iterdir() if not p.name.endswith(".lance"))
            if foreign:
                raise AtlasError(
                    f"{path} exists and is not an Arp atlas (it holds {', '.join(foreign[:3])}"
                    f"{'...' if len(foreign) > 3 else ''}); give a new or empty folder for a new atlas"
                )

    def verify(self) -> None:
        """Read one column of every table in full, so damaged data files raise AtlasError naming the table."""
        for name in self.table_names():
            try:
                tbl = self.db.open_table(name)
                column = "object_id" if "object_id" in tbl.schema.names else tbl.schema.names[0]
                tbl.search().select([column]).limit(None).to_arrow()
            except Exception as exc:
                raise AtlasError(f"atlas {self.uri}: table {name} is damaged ({_one_line(exc)}); "
                                 "restore it from a backup or rebuild the atlas") from None

    def _initialise(self) -> None:
        for name, tbl_schema in schema.FIXED_TABLES.items():
            if not self._exists(name):
                self.db.create_table(name, schema=tbl_schema, exist_ok=True)
        self.set_meta("schema_version", schema.SCHEMA_VERSION)
        self.set_meta("created_at", utcnow().isoformat())

    def _check_version(self) -> None:
        found = self.get_meta("schema_version")
        if found != schema.SCHEMA_VERSION:
            raise SchemaVersionError(
                f"atlas {self.uri} has schema version {found}, this Arp reads version "
                f"{schema.SCHEMA_VERSION}; rebuild it (`python -m embeddings demo --atlas DIR`) "
                "or open it with the Arp release that wrote it"
            )

    # ----------------------------------------------------------------- tables
    def _exists(self, name: str) -> bool:
        return name in self.db.table_names(limit=100_000)

    def table_names(self) -> list[str]:
        """Names of all tables in this atlas."""
        return sorted(self.db.table_names(limit=100_000))

    def has_table(self, name: str) -> bool:
        """Whether a table exists."""
        return self._exists(name)

    def table(self, name: str) -> Any:  # a lancedb Table; its query builders are typed too loosely to check
        """Open a table for index management and vector search (AtlasError naming the table when absent)."""
        if not self._exists(name):
            raise AtlasError(f"atlas {self.uri} has no table {name!r}")
        return self.db.open_table(name)

    def count(self, name: str, where: str | None = None) -> int:
        """Row count of a table, optionally of the rows matching `where` (0 when the table does not exist)."""
        if not self._exists(name):
            return 0
        return self.db.open_table(name).count_rows(where)

    def estimate_count(self, name: str, where: str, *, sample_rows: int = 100_000) -> int:
        """Rows matching `where`, estimated from the first fragments (>= `sample_rows` rows, scanned without
        scalar indexes, which cost more than a scan for broad conditions); exact on small tables."""
        if not self._exists(name):
            return 0
        ds = self.db.open_table(name).to_lance()
        sample, rows = [], 0
        for frag in ds.get_fragments():
            if rows >= sample_rows:
                break
            sample.append(frag)
            rows += frag.count_rows()
        total = ds.count_rows()
        hits = ds.scanner(columns=[], with_row_id=True, filter=where, fragments=sample, use_scalar_index=False).count_rows()
        return hits if rows >= total else int(round(hits * total / max(rows, 1)))

    def scan_ids_unindexed(self, name: str, where: str, *, key: str = "object_id") -> list:
        """The `key` values of rows matching `where`, by a plain column scan (no scalar index: the better plan
        when a broad range condition is ANDed with a short id list)."""
        if not self._exists(name):
            return []
        ds = self.db.open_table(name).to_lance()
        return ds.to_table(columns=[key], filter=where, use_scalar_index=False).column(key).to_pylist()

    def columns(self, name: str) -> list[str]:
        """Column names of a table ([] when it does not exist)."""
        return list(self.db.open_table(name).schema.names) if self._exists(name) else []

    def version(self, name: str) -> int:
        """The table's current version (0 when absent): changes with every write, so it keys caches."""
        return int(self.db.open_table(name).version) if self._exists(name) else 0

    # ----------------------------------------------------------------- reads
    def scan_arrow(
        self, name: str, columns: Iterable[str] | None = None, where: str | None = None, limit: int | None = None
    ) -> pa.Table:
        """Rows of a table (all, or those matching `where`; only `columns` when given) as Arrow."""
        query = self.table(name).search()
        if where:
            query = query.where(where)
        if columns is not None:
            query = query.select(list(columns))
        return query.limit(limit).to_arrow()

    def scan(
        self, name: str, columns: Iterable[str] | None = None, where: str | None = None, limit: int | None = None
    ) -> pd.DataFrame:
        """Rows of a table as a DataFrame; an absent table gives an empty frame with the asked columns."""
        if not self._exists(name):
            return pd.DataFrame(columns=list(columns or []))
        return self.scan_arrow(name, columns, where, limit).to_pandas()

    def get_row(self, name: str, value: Any, *, key: str = "object_id", columns: Iterable[str] | None = None) -> dict | None:
        """The row whose `key` column equals `value`, as a dict (None when absent or the table does not exist)."""
        if not self._exists(name):
            return None
        rows = self.scan_arrow(name, columns, where=where_eq(key, value), limit=1).to_pylist()
        return rows[0] if rows else None

    # ----------------------------------------------------------------- meta
    def get_meta(self, key: str, default: Any = None) -> Any:
        """A JSON value from the atlas metadata table."""
        row = self.get_row(schema.META, key, key="key")
        return json.loads(row["value"]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON value in the atlas metadata table."""
        self.upsert(schema.META, [{"key": key, "value": json.dumps(value)}], key="key")

    def meta_items(self, prefix: str) -> dict[str, Any]:
        """Every metadata value whose key starts with `prefix`, by key."""
        if any(c in prefix for c in "%_\\"):
            raise ValueError(f"metadata prefix {prefix!r} may not contain %, _ or backslash")
        rows = self.scan_arrow(schema.META, ["key", "value"], where=f"key LIKE '{_sql_str(prefix)}%'").to_pylist()
        return {r["key"]: json.loads(r["value"]) for r in rows}

    def register_survey(
        self,
        name: str,
        *,
        bands: list[str] | None = None,
        pixel_scale: float | None = None,
        image_shape: list[int] | None = None,
        wavelength: np.ndarray | None = None,
        description: str = "",
    ) -> None:
        """Record a survey's band names, pixel scale (arcsec/px) and spectral grid (Angstrom).

        Each field is its own metadata row (`survey:["name", "field"]`), written by one merge_insert, so
        concurrent writers never lose each other's surveys or fields.
        """
        fields: dict[str, Any] = {"registered": True}
        if bands is not None:
            fields["bands"] = list(bands)
        if pixel_scale is not None:
            fields["pixel_scale"] = float(pixel_scale)
        if image_shape is not None:
            fields["image_shape"] = [int(s) for s in image_shape]
        if wavelength is not None:
            fields["wavelength"] = [float(w) for w in np.asarray(wavelength, dtype=np.float64)]
        if description:
            fields["description"] = description
        rows = [{"key": SURVEY_PREFIX + json.dumps([name, k]), "value": json.dumps(v)} for k, v in fields.items()]
        self.upsert(schema.META, rows, key="key")

    def surveys(self) -> dict[str, dict]:
        """Survey metadata: bands, pixel_scale, image_shape, wavelength grid."""
        out: dict[str, dict] = {k: dict(v) for k, v in (self.get_meta("surveys", {}) or {}).items()}  # pre-0.2 layout
        for key, value in self.meta_items(SURVEY_PREFIX).items():
            name, field = json.loads(key[len(SURVEY_PREFIX):])
            entry = out.setdefault(name, {})
            if field != "registered":
                entry[field] = value
        return out

    def wavelength(self, survey: str) -> np.ndarray | None:
        """The spectral grid (Angstrom) of a survey, or None when it has no spectra."""
        grid = self.surveys().get(survey, {}).get("wavelength")
        return None if grid is None else np.asarray(grid, dtype=np.float64)

    # ----------------------------------------------------------------- writes
    def upsert(
        self,
        name: str,
        data: pa.Table | pd.DataFrame | list[dict],
        *,
        key: str = "object_id",
        batch_rows: int = WRITE_BATCH_ROWS,
        create_schema: pa.Schema | None = None,
    ) -> int:
        """Insert-or-update rows by `key` (idempotent), in batches, retrying write conflicts."""
        table = _to_arrow(data, create_schema)
        if table.num_rows == 0:
            return 0
        tbl = self._table_for_write(name, table, create_schema)
        table = self._align_columns(tbl, table)
        for start in range(0, table.num_rows, batch_rows):
            chunk = table.slice(start, batch_rows)
            with_retry(
                lambda chunk=chunk: tbl.merge_insert(key)  # type: ignore[misc]  # default binds the loop value
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(chunk),
                name,
            )
        return table.num_rows

    def append(self, name: str, data: pa.Table | pd.DataFrame | list[dict], *, create_schema: pa.Schema | None = None) -> int:
        """Append rows (for append-only tables such as tags), retrying write conflicts."""
        table = _to_arrow(data, create_schema or schema.FIXED_TABLES.get(name))
        if table.num_rows == 0:
            return 0
        tbl = self._table_for_write(name, table, create_schema)
        table = self._align_columns(tbl, table)
        with_retry(lambda: tbl.add(table), name)
        return table.num_rows

    def replace(self, name: str, data: pa.Table | pd.DataFrame | list[dict]) -> int:
        """Overwrite a derived table (maps, predictions) in one commit."""
        table = _to_arrow(data)
        with_retry(lambda: self.db.create_table(name, data=table, mode="overwrite"), name)
        return table.num_rows

    def delete(self, name: str, where: str) -> None:
        """Delete rows matching a SQL predicate, retrying write conflicts."""
        tbl = self.table(name)
        with_retry(lambda: tbl.delete(where), name)

    def optimize(self, name: str, *, keep_versions_newer_than: timedelta = timedelta(minutes=10)) -> None:
        """Compact files, refresh indexes and delete table versions older than the given age.

        Pass `timedelta(0)` only when no other process reads the table (a fresh bulk build).
        """
        if not self._exists(name):
            return
        tbl = self.db.open_table(name)
        with_retry(lambda: tbl.optimize(), name)
        try:
            dataset = tbl.to_lance()
        except (AttributeError, NotImplementedError, ValueError):  # not a local Lance table
            return
        with_retry(lambda: dataset.cleanup_old_versions(older_than=keep_versions_newer_than), name)

    def _table_for_write(self, name: str, table: pa.Table, create_schema: pa.Schema | None) -> Any:
        if self._exists(name):
            return self.db.open_table(name)
        target = create_schema or schema.FIXED_TABLES.get(name)
        if name == schema.OBJECTS:
            target = _objects_schema_for(table)
        if target is None:
            target = table.schema
        else:
            target = _merge_schema(target, table.schema)
        return with_retry(lambda: self.db.create_table(name, schema=target, exist_ok=True), name)

    def _align_columns(self, tbl: Any, table: pa.Table) -> pa.Table:
        """Add columns the table lacks (as nullable) and cast the batch to the table's types."""
        existing = tbl.schema
        missing = [f.with_nullable(True) for f in table.schema if f.name not in existing.names]
        if missing:
            with_retry(lambda: tbl.add_columns(missing), "add_columns")
            existing = tbl.schema
        fields = [existing.field(n) for n in table.column_names]
        arrays = []
        for col, field in zip(table.columns, fields, strict=True):
            arrays.append(col if col.type == field.type else col.cast(field.type))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))

    # ----------------------------------------------------------------- objects
    def objects(
        self,
        columns: Iterable[str] | None = None,
        where: str | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Objects as a DataFrame; pass `columns` to avoid reading pixels and spectra."""
        if not self._exists(schema.OBJECTS):
            return pd.DataFrame(columns=list(columns or ["object_id"]))
        return self.scan(schema.OBJECTS, columns, where, limit)

    def get_objects(self, object_ids: Iterable[str], columns: Iterable[str] | None = None) -> pd.DataFrame:
        """Rows for the given ids, in the order given (missing ids are dropped)."""
        ids = list(object_ids)
        cols = None if columns is None else list(dict.fromkeys(["object_id", *columns]))
        if not ids:  # an empty result still has its columns, so callers can merge and filter on it
            return pd.DataFrame(columns=cols or ["object_id"])
        frame = self.objects(cols, where=where_in("object_id", ids))
        order = {oid: i for i, oid in enumerate(ids)}
        frame = frame.assign(_o=frame["object_id"].map(order)).sort_values("_o").drop(columns="_o")
        return frame.reset_index(drop=True)

    def label_columns(self) -> list[str]:
        """Non-core scalar columns of the objects table (catalogue labels, truth, photometry)."""
        if not self._exists(schema.OBJECTS):
            return []
        core = set(schema.OBJECT_CORE.names)
        out = []
        for field in self.db.open_table(schema.OBJECTS).schema:
            if field.name in core:
                continue
            if pa.types.is_integer(field.type) or pa.types.is_floating(field.type) or pa.types.is_string(field.type) or pa.types.is_large_string(field.type) or pa.types.is_boolean(field.type):
                out.append(field.name)
        return out


def _objects_schema_for(table: pa.Table) -> pa.Schema:
    return _merge_schema(schema.OBJECT_CORE, table.schema)


def _merge_schema(base: pa.Schema, extra: pa.Schema) -> pa.Schema:
    fields = list(base)
    names = set(base.names)
    fields += [f.with_nullable(True) for f in extra if f.name not in names]
    return pa.schema(fields)


def _one_line(exc: BaseException) -> str:
    """An exception as one short line, without the Rust source locations Lance appends (server paths)."""
    text = re.sub(r",?\s*\S+\.rs:\d+(:\d+)?", "", " ".join(str(exc).split()))
    return text[:200] or type(exc).__name__


# ----------------------------------------------------------------- filters: every SQL string is written here
def _sql_str(value: str) -> str:
    return str(value).replace("'", "''")


def sql_literal(value: Any) -> str:
    """One value as a SQL literal: strings quoted safely, floats exactly, bools and ints as they are."""
    if isinstance(value, str):
        return f"'{_sql_str(value)}'"
    if isinstance(value, bool | np.bool_):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float | np.floating):
        return repr(float(value))
    return str(int(value))


def sql_list(values: Iterable[Any]) -> str:
    """Render values as a SQL IN-list body, quoting strings safely."""
    return ", ".join(sql_literal(v) for v in values)


def where_eq(column: str, value: Any) -> str:
    """`column = value`."""
    return f"{column} = {sql_literal(value)}"


def where_in(column: str, values: Iterable[Any]) -> str:
    """`column IN (values)` (an empty list matches nothing)."""
    body = sql_list(values)
    return f"{column} IN ({body})" if body else "FALSE"


def where_at_least(column: str, lo: float) -> str:
    """`column >= lo`."""
    return f"{column} >= {sql_literal(float(lo))}"


def where_at_most(column: str, hi: float) -> str:
    """`column <= hi`."""
    return f"{column} <= {sql_literal(float(hi))}"


def where_between(column: str, lo: float, hi: float) -> str:
    """`lo <= column <= hi`."""
    return f"{where_at_least(column, lo)} AND {where_at_most(column, hi)}"


def where_any(*parts: str | None) -> str | None:
    """The OR of the given conditions (each parenthesised; empty ones skipped), None when there are none."""
    kept = [f"({p})" for p in parts if p]
    return " OR ".join(kept) or None


def where_all(*parts: str | None) -> str | None:
    """The AND of the given conditions (each parenthesised; empty ones skipped), None when there are none."""
    kept = [f"({p})" for p in parts if p]
    return " AND ".join(kept) or None


def open_atlas(uri: str | Path | None = None, *, create: bool = False) -> Atlas:
    """Open the atlas at `uri` (default: `$ARP_ATLAS` or the demo atlas); `create=True` makes it."""
    return Atlas(uri, create=create)
