"""Primary keys of upserted tables: finding duplicated keys, and declaring keys on tables made before Arp did.

Lance's merge_insert only notices two writers inserting the same new key when the table declares that key
its (unenforced) primary key; declaring it on an existing table is one metadata commit, no data is rewritten.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from backend import schema
from backend.store.errors import AtlasError, DuplicateKeyError
from backend.store.sql import where_in
from backend.store.writes import with_retry

SHOWN_KEYS = 5  # duplicated keys named in a message


def read_keys(tbl: Any, key: str) -> pa.ChunkedArray:
    """The whole key column of a table."""
    return tbl.search().select([key]).limit(None).to_arrow().column(key)


def duplicated(keys: pa.ChunkedArray) -> list[str]:
    """The key values present more than once, sorted."""
    counts = pc.value_counts(keys.combine_chunks())
    repeated = counts.filter(pc.greater(counts.field("counts"), 1)).field("values")
    return sorted(str(v) for v in repeated.to_pylist())


def check_unique(name: str, key: str, keys: pa.ChunkedArray, uri: str = "ATLAS") -> None:
    """Raise DuplicateKeyError naming the table and its duplicated keys, AtlasError for missing (null) keys."""
    if keys.null_count:
        raise AtlasError(f"table {name} has {keys.null_count} row(s) without a {key}; delete them "
                         f"(e.g. `{key} IS NULL`) before writing to it")
    dups = duplicated(keys)
    if dups:
        shown = ", ".join(dups[:SHOWN_KEYS]) + (f" ... ({len(dups)} keys in all)" if len(dups) > SHOWN_KEYS else "")
        raise DuplicateKeyError(
            f"table {name} holds {len(dups)} {key} value(s) more than once ({shown}), written by concurrent "
            f"writers before keys were declared; keep one row per key with "
            f"`python -m embeddings dedupe --table {name} --atlas {uri}`"
        )


def has_primary_key(tbl: Any, key: str) -> bool:
    """Whether the table declares `key` as its primary key (non-nullable, with Lance's marker)."""
    field = tbl.schema.field(key)
    return schema.is_primary_key(field) and not field.nullable


def declare_primary_key(tbl: Any, name: str, key: str, uri: str = "ATLAS") -> bool:
    """Declare `key` the table's primary key after checking it is unique; False when it already was.

    Raises DuplicateKeyError (naming the table and keys) and leaves the table untouched when it is not unique.
    """
    if has_primary_key(tbl, key):
        return False
    check_unique(name, key, read_keys(tbl, key), uri)
    if tbl.schema.field(key).nullable:
        with_retry(lambda: tbl.alter_columns({"path": key, "nullable": False}), name)
    if not schema.is_primary_key(tbl.schema.field(key)):
        try:
            with_retry(lambda: tbl.set_unenforced_primary_key(key), name)
        except ValueError:  # another process declared it between our check and our commit
            if not has_primary_key(tbl, key):
                raise
    return True


def drop_duplicates(tbl: Any, name: str, key: str) -> int:
    """Delete all but the newest copy (highest row id) of each duplicated key, in one commit; rows deleted."""
    dups = duplicated(read_keys(tbl, key))
    if not dups:
        return 0
    rows = tbl.search().where(where_in(key, dups)).with_row_id(True).select([key]).limit(None).to_arrow()
    newest: dict[str, int] = {}
    for value, rowid in zip(rows.column(key).to_pylist(), rows.column("_rowid").to_pylist(), strict=True):
        newest[value] = max(newest.get(value, rowid), rowid)
    drop = sorted(set(rows.column("_rowid").to_pylist()) - set(newest.values()))
    with_retry(lambda: tbl.delete(where_in("_rowid", drop)), name)
    return len(drop)
