"""The Atlas: one LanceDB database per atlas, with its reads, metadata and retrying, idempotent writes."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from backend import schema
from backend.config import default_atlas_uri, is_remote
from backend.store.connection import connect
from backend.store.errors import AtlasError, AtlasNotFoundError, SchemaVersionError, one_line
from backend.store.keys import check_unique, declare_primary_key, drop_duplicates, read_keys
from backend.store.sql import where_eq, where_in, where_prefix
from backend.store.writes import (
    WRITE_BATCH_ROWS,
    align_columns,
    schema_for_new_table,
    to_arrow,
    utcnow,
    with_retry,
)

SURVEY_PREFIX = "survey:"  # metadata rows survey:["<survey>", "<field>"]
KEYS_DECLARED = "primary_keys_declared"  # metadata: every upserted table declares its key (see backend.store.keys)

log = logging.getLogger(__name__)


class Atlas:
    """One atlas: a LanceDB database holding objects, vectors, maps, tags, jobs and probes."""

    def __init__(self, uri: str | Path | None = None, *, create: bool = False) -> None:
        self.uri = str(uri or default_atlas_uri()).rstrip("/")
        self.remote = is_remote(self.uri)
        try:
            self.db = connect(self.uri, create)
            if not self._exists(schema.META):
                if not create:
                    raise AtlasNotFoundError(
                        f"{self.uri} is not an Arp atlas (no {schema.META} table): build one with "
                        f"`python -m embeddings demo --atlas {self.uri}`"
                    )
                self._initialise()
            self._check_version()
            self._declare_keys()
        except AtlasError:
            raise
        except Exception as exc:  # lance/object-store errors (missing _versions, bad credentials), unusable paths
            raise AtlasError(f"atlas {self.uri} cannot be opened ({one_line(exc)})") from None

    # ----------------------------------------------------------------- set-up
    def verify(self) -> None:
        """Read one column of every table in full: damaged data files, and keys stored twice, raise AtlasError naming the table."""
        for name in self.table_names():
            try:
                tbl = self.db.open_table(name)
                key = schema.table_key(name)
                names = tbl.schema.names
                column: str = next(c for c in (key, "object_id", names[0]) if c is not None and c in names)
                values = read_keys(tbl, column)
            except Exception as exc:
                raise AtlasError(f"atlas {self.uri}: table {name} is damaged ({one_line(exc)}); "
                                 "restore it from a backup or rebuild the atlas") from None
            if key is not None and column == key:
                check_unique(name, key, values, self.uri)

    def dedupe(self, name: str) -> int:
        """Keep the newest row of each key stored twice in an upserted table, then declare its key; rows deleted.

        The deletion is one commit (older versions stay until `optimize` cleans them); run it with no other writer.
        """
        key = schema.table_key(name)
        if key is None:
            raise AtlasError(f"table {name} has no upsert key to deduplicate on")
        tbl = self.table(name)
        dropped = drop_duplicates(tbl, name, key)
        declare_primary_key(tbl, name, key, self.uri)
        return dropped

    def _declare_keys(self) -> None:
        """Declare the key of every upserted table made before keys were declared (once per atlas; metadata only).

        A table whose key is already stored twice is left as it is and logged (`verify` raises on it).
        """
        if self.get_meta(KEYS_DECLARED):
            return
        complete = True
        for name in self.table_names():
            key = schema.table_key(name)
            if key is None:
                continue
            tbl = self.db.open_table(name)
            if key not in tbl.schema.names:
                continue
            try:
                if declare_primary_key(tbl, name, key, self.uri):
                    log.info("atlas %s: declared %s the primary key of %s", self.uri, key, name)
            except Exception as exc:  # a damaged table, or a read-only atlas: it stays readable as it is
                complete = False
                log.warning("atlas %s: %s", self.uri, exc if isinstance(exc, AtlasError) else
                            f"cannot declare {key} the primary key of {name} ({one_line(exc)})")
        if complete:
            try:
                self.set_meta(KEYS_DECLARED, True)
            except Exception as exc:  # read-only: checked again at the next open
                log.debug("atlas %s: %s not recorded (%s)", self.uri, KEYS_DECLARED, one_line(exc))

    def _initialise(self) -> None:
        for name, tbl_schema in schema.FIXED_TABLES.items():
            if not self._exists(name):
                self.db.create_table(name, schema=tbl_schema, exist_ok=True)
        self.set_meta("schema_version", schema.SCHEMA_VERSION)
        self.set_meta("created_at", utcnow().isoformat())
        self.set_meta(KEYS_DECLARED, True)  # every table this Arp creates declares its key

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
        rows = self.scan_arrow(schema.META, ["key", "value"], where=where_prefix("key", prefix)).to_pylist()
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
        table = to_arrow(data, create_schema)
        if table.num_rows == 0:
            return 0
        tbl = self._table_for_write(name, table, create_schema, key)
        table = align_columns(tbl, table)
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

    def update_columns(self, name: str, data: pa.Table | pd.DataFrame | list[dict], *, key: str = "object_id") -> int:
        """Write some columns of rows that already exist without rewriting the other columns.

        For measured catalogue columns (`morph_*`, `line_*`): a row upsert would copy every pixel and spectrum
        of the updated rows. Columns the table lacks arrive in one commit holding only them (Lance's `merge`);
        columns it has are rewritten in one commit (Lance's `rewrite_columns` merge_insert). Keys the table
        lacks are skipped; rows the data leaves out keep their values (null in a new column). Returns the rows
        of `data` whose key the table holds.
        """
        table = to_arrow(data)
        if table.num_rows == 0 or not self._exists(name):
            return 0
        tbl = self.db.open_table(name)
        have = set(tbl.schema.names)
        new = [c for c in table.column_names if c != key and c not in have]
        old = [c for c in table.column_names if c != key and c in have]
        matched = None
        if new:
            keys = table.column(key).cast(tbl.schema.field(key).type)  # the join needs the stored key type
            added = pa.table([keys, *(table.column(c) for c in new)], names=[key, *new])
            try:
                with_retry(lambda: self.db.open_table(name).to_lance().merge(added, left_on=key), name)
            except (OSError, RuntimeError, ValueError):
                if not set(new) <= set(self.db.open_table(name).schema.names):
                    raise
                old += new  # another writer added these columns first: rewrite them instead
        if old:
            rewritten = align_columns(tbl, table.select([key, *old]))
            result = with_retry(
                lambda: self.db.open_table(name).to_lance().merge_insert(key).when_matched_update_all()
                .write_mode("rewrite_columns").execute(rewritten),
                name,
            )
            matched = int(result["num_updated_rows"])
        if matched is None:
            stored = self.scan_arrow(name, [key]).column(key)
            matched = int(pc.sum(pc.is_in(table.column(key), value_set=stored)).as_py() or 0)
        return matched

    def append(self, name: str, data: pa.Table | pd.DataFrame | list[dict], *, create_schema: pa.Schema | None = None) -> int:
        """Append rows (for append-only tables such as tags), retrying write conflicts."""
        table = to_arrow(data, create_schema or schema.FIXED_TABLES.get(name))
        if table.num_rows == 0:
            return 0
        tbl = self._table_for_write(name, table, create_schema)
        table = align_columns(tbl, table)
        with_retry(lambda: tbl.add(table), name)
        return table.num_rows

    def replace(self, name: str, data: pa.Table | pd.DataFrame | list[dict]) -> int:
        """Overwrite a derived table (maps, predictions) in one commit."""
        table = to_arrow(data)
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

    def _table_for_write(self, name: str, batch: pa.Table, create_schema: pa.Schema | None, key: str | None = None) -> Any:
        if self._exists(name):
            return self.db.open_table(name)
        target = schema_for_new_table(name, batch, create_schema, key)
        return with_retry(lambda: self.db.create_table(name, schema=target, exist_ok=True), name)

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
