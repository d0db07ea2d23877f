"""Write helpers: retrying commit conflicts, timestamps, and shaping Arrow batches to a table's schema."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa

from backend import schema

log = logging.getLogger(__name__)
T = TypeVar("T")

WRITE_BATCH_ROWS = 2_000
_RETRY_ATTEMPTS = 30  # with the 2 s cap: up to ~50 s of backoff before a writer gives up (a loaded box)


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


def to_arrow(data: pa.Table | pd.DataFrame | list[dict], schema_hint: pa.Schema | None = None) -> pa.Table:
    """Rows (Arrow, pandas or dicts) as an Arrow table; dict rows take the hint's types for the keys they use."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    if schema_hint is not None:
        names = [f.name for f in schema_hint]
        fields = [schema_hint.field(n) for n in names if any(n in row for row in data)]
        return pa.Table.from_pylist(data, schema=pa.schema(fields))
    return pa.Table.from_pylist(data)


def merge_schema(base: pa.Schema, extra: pa.Schema) -> pa.Schema:
    """`base` followed by the fields of `extra` it lacks (nullable)."""
    fields = list(base)
    names = set(base.names)
    fields += [f.with_nullable(True) for f in extra if f.name not in names]
    return pa.schema(fields)


def declare_key(table_schema: pa.Schema, key: str) -> pa.Schema:
    """`table_schema` with `key` non-nullable and marked as Lance's primary key (so concurrent upserts conflict)."""
    i = table_schema.get_field_index(key)
    if i < 0:  # no such column: merge_insert will say so
        return table_schema
    field = table_schema.field(i)
    if schema.is_primary_key(field) and not field.nullable:
        return table_schema
    metadata = {**(field.metadata or {}), **schema.PRIMARY_KEY_METADATA}
    return table_schema.set(i, field.with_nullable(False).with_metadata(metadata))


def schema_for_new_table(name: str, batch: pa.Table, create_schema: pa.Schema | None, key: str | None = None) -> pa.Schema:
    """The schema a table gets when its first batch is written: the known one widened by the batch's columns.

    The upsert `key`, when given, is declared the table's primary key.
    """
    target = create_schema or schema.FIXED_TABLES.get(name)
    if name == schema.OBJECTS:
        target = schema.OBJECT_CORE
    merged = batch.schema if target is None else merge_schema(target, batch.schema)
    return merged if key is None else declare_key(merged, key)


def align_columns(tbl: Any, batch: pa.Table) -> pa.Table:
    """Add columns the table lacks (as nullable) and cast the batch to the table's types."""
    existing = tbl.schema
    missing = [f.with_nullable(True) for f in batch.schema if f.name not in existing.names]
    if missing:
        with_retry(lambda: tbl.add_columns(missing), "add_columns")
        existing = tbl.schema
    fields = [existing.field(n) for n in batch.column_names]
    arrays = []
    for col, field in zip(batch.columns, fields, strict=True):
        arrays.append(col if col.type == field.type else col.cast(field.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
